"""The policy of organisations' own API keys (issue 21), pure: how long a key lives and who may
grant which roles. The registry's domain decides with it; the routes describe it; the rows and
the other services' copies of the keys are shared/api_keys.py's.

- Lifetime: an HTTP-issued key expires DEFAULT_LIFETIME after its issue or rotation unless the
  request names an earlier or later `expires_at`, at most MAX_LIFETIME ahead.
- Who: a `registry_admin` manages any organisation's keys and may grant any role; an
  `org_admin` manages its own organisation's keys only, and grants only ORG_GRANTABLE roles
  (never registry_admin, auditor or service, which reach beyond one organisation).
"""

from __future__ import annotations

from datetime import timedelta

from shared.principals import Role

DEFAULT_LIFETIME = timedelta(days=90)
MAX_LIFETIME = timedelta(days=365)
ORG_GRANTABLE = frozenset({Role.MEMBER, Role.LOGISTICS, Role.ORG_ADMIN})
MANAGERS = (Role.REGISTRY_ADMIN, Role.ORG_ADMIN)


def grantable(roles: frozenset[Role]) -> frozenset[Role]:
    """The roles a key holding `roles` may put on a key it issues or rotates."""
    if Role.REGISTRY_ADMIN in roles:
        return frozenset(Role)
    if Role.ORG_ADMIN in roles:
        return ORG_GRANTABLE
    return frozenset()
