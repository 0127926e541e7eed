"""Who may do what: members for their own organisation, administrators for anyone, auditors
read everything and write nothing, every other key reads needs and pledges without their
internal notes and contacts.

The rules are plain functions (webhook_access.py and the queries use them too); routes take
their result as a parameter through the dependencies `Writing` (api/writing.py) and
`Viewing`."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from shared.auth import Principal, Role
from shared.deps import Caller

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


def sees_internal(viewer: str | None, *organisations: str) -> bool:
    """Whether a viewer (`viewer(caller)`) sees the internal notes, contacts and events of a
    record concerning `organisations` (a need's recipient; a pledge's donor and recipient)."""
    return viewer is None or viewer in organisations


def require_party(caller: Principal, *organisations: str) -> None:
    """Raises Forbidden unless the caller is one of the record's organisations or reads all."""
    if not sees_internal(viewer(caller), *organisations):
        caller.require(*READ_ALL)


async def _writer(caller: Caller) -> str | None:
    return writer(caller)


async def _viewer(caller: Caller) -> str | None:
    return viewer(caller)


Writing = Annotated[str | None, Depends(_writer)]  # the acting_for of a key that may write
Viewing = Annotated[str | None, Depends(_viewer)]
