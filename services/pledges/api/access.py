"""Who may do what: members for their own organisation, administrators for anyone, auditors
read everything and write nothing, every other key reads needs and pledges without their
internal notes and contacts."""

from __future__ import annotations

from shared.auth import Principal, Role

WRITERS = (Role.MEMBER, Role.REGISTRY_ADMIN)
READ_ALL = (Role.AUDITOR, Role.REGISTRY_ADMIN)


def writer(caller: Principal, *, acting_as: str | None = None) -> str | None:
    """The organisation the caller writes for (None: an administrator, who may act for anyone).
    Raises Forbidden for a key that may not write, or one claiming another organisation."""
    caller.require(*WRITERS)
    if acting_as is not None:
        caller.require_acting_for(acting_as, unless=(Role.REGISTRY_ADMIN,))
    return None if caller.has(Role.REGISTRY_ADMIN) else caller.organisation


def viewer(caller: Principal) -> str | None:
    """The organisation whose internal notes the caller sees (None: it sees them all)."""
    return None if caller.has(*READ_ALL) else caller.organisation
