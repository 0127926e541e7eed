"""Who may do what at the registry: the access rules, and the FastAPI dependencies routes take.

Registry administrators register and correct organisations and act for anyone; members act
for their own organisation (its contacts, its partnerships); org_admin keys manage their own
organisation's API keys (domain/api_keys.py has those rules); service keys report key uses.
A route takes the dependency's result as a parameter: the caller, checked before the route
runs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.registry.domain import api_keys as keys
from services.registry.requests import OrgId
from shared.auth import Principal, Role
from shared.deps import BearerKey, Caller


def acting_for(caller: Principal) -> str | None:
    """None for registry administrators (they act for anyone), else the key's organisation."""
    return None if caller.has(Role.REGISTRY_ADMIN) else caller.organisation


def sees_contacts(reader: Principal, organisation_id: str) -> bool:
    """An organisation's contacts show to itself and to registry administrators (its view,
    and the webhooks: webhook_access.py)."""
    return reader.has(Role.REGISTRY_ADMIN) or reader.organisation == organisation_id


def manager(caller: Principal) -> keys.Manager:
    """The caller as the key asking for a change of API keys."""
    return keys.Manager(key_id=caller.key_id, organisation=caller.organisation, roles=caller.roles)


async def _contacts_editor(organisation_id: OrgId, caller: Caller) -> Principal:
    caller.require(Role.REGISTRY_ADMIN, Role.MEMBER)
    caller.require_acting_for(organisation_id, unless=(Role.REGISTRY_ADMIN,))
    return caller


# a registry administrator's key
Admin = Annotated[Principal, Depends(BearerKey(Role.REGISTRY_ADMIN))]
# a registry administrator's or a member's key (a member acts for its own organisation)
Member = Annotated[Principal, Depends(BearerKey(Role.REGISTRY_ADMIN, Role.MEMBER))]
# the organisation's own member or a registry administrator
ContactsEditor = Annotated[Principal, Depends(_contacts_editor)]
# a service's key (the workers of pledges and shipments)
Service = Annotated[Principal, Depends(BearerKey(Role.SERVICE))]
