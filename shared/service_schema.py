"""The schema a service's processes bring up: what its API, its worker and the backup agree on.

A service that consumes the registry keeps its own copy of the registry's organisations (the
directory, shared/directory.py); the registry, whose organisations they are, has none.
"""

from __future__ import annotations

from shared import db, directory

DIRECTORY_OWNER = "registry"


def scripts(service: str) -> list[str]:
    """The DDL `service`'s API and worker hand to migrate: the directory's tables for a service
    that copies the registry (shared/migrations/directory/), then the service's own
    (services/<service>/migrations/), each its migrations' SQL in the order yoyo applies them."""
    own = db.schema_text(f"services.{service}")
    return [own] if service == DIRECTORY_OWNER else [directory.SCHEMA, own]
