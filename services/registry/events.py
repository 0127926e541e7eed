"""Facts the registry records. Names are stable; a changed shape gets a new schema version."""

ORGANISATION_REGISTERED = "registry.organisation-registered"
ORGANISATION_RENAMED = "registry.organisation-renamed"
ORGANISATION_ALIAS_ADDED = "registry.organisation-alias-added"

STREAM_ORGANISATION = "organisation"
