"""Who calls: the roles an API key may hold and the principal a request acts as.

Pure (no driver, no framework): the domains and commands of every service name roles and
principals, so they live apart from the authenticator that reads keys from the database
(shared/auth.py, which re-exports both names).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from shared.errors import Forbidden


class Role(StrEnum):
    MEMBER = "member"
    LOGISTICS = "logistics"
    AUDITOR = "auditor"
    REGISTRY_ADMIN = "registry_admin"
    # an organisation's administrator: issues, lists, rotates and revokes its own
    # organisation's keys (services/registry/api/api_keys.py), nothing else
    ORG_ADMIN = "org_admin"
    # service-to-service: a worker catching up from another service's event feed
    SERVICE = "service"


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    organisation: str
    roles: frozenset[Role]

    def has(self, *roles: Role) -> bool:
        return not self.roles.isdisjoint(roles)

    def require(self, *roles: Role) -> None:
        if not self.has(*roles):
            wanted = ", ".join(r.value for r in roles)
            raise Forbidden(f"this key lacks the role needed here (one of: {wanted})")

    def require_acting_for(self, organisation: str, *, unless: tuple[Role, ...] = ()) -> None:
        """A key acts only for its own organisation, unless it holds one of `unless`."""
        if organisation != self.organisation and not self.has(*unless):
            raise Forbidden(
                f"this key belongs to organisation {self.organisation} and may not act for"
                f" {organisation}"
            )
