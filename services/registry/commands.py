"""What callers ask the registry to do: one frozen dataclass per intent, built by the routes
after validation and authorisation, run by the handler registered for its type (handlers/).

A command names its record, carries what the domain decides on (the domain's own input, as the
route validated it) and what the route established about the caller: whom it acts for
(`acting_for`: None for registry administrators), the manager of API keys, the version the
caller read (`if_match`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.registry import domain
from services.registry.domain import api_keys as keys
from shared.commands import Command
from shared.principals import Role


@dataclass(frozen=True, slots=True)
class RegisterOrganisation(Command):
    """`registration.contacts` in clear (sealed by the handler); `distinct`: register despite
    a namesake."""

    registration: domain.RegisterOrganisation
    distinct: bool = False


@dataclass(frozen=True, slots=True)
class RenameOrganisation(Command):
    """`distinct`: rename despite a namesake (as a registration)."""

    organisation_id: str
    rename: domain.RenameOrganisation
    if_match: int | None = None
    distinct: bool = False


@dataclass(frozen=True, slots=True)
class AddAlias(Command):
    """`distinct`: add the alias despite a namesake (as a registration)."""

    organisation_id: str
    alias: domain.AddAlias
    if_match: int | None = None
    distinct: bool = False


@dataclass(frozen=True, slots=True)
class CorrectOrganisation(Command):
    """`distinct`: move to another country despite a namesake there (as a registration)."""

    organisation_id: str
    correction: domain.CorrectOrganisation
    if_match: int | None = None
    distinct: bool = False


@dataclass(frozen=True, slots=True)
class ChangeContacts(Command):
    """The contacts now, in clear (sealed by the handler)."""

    organisation_id: str
    contacts: tuple[dict[str, Any], ...]
    if_match: int | None = None


@dataclass(frozen=True, slots=True)
class ProposePartnership(Command):
    proposal: domain.ProposePartnership
    acting_for: str | None


@dataclass(frozen=True, slots=True)
class ChangePartnershipStatus(Command):
    partnership_id: str
    change: domain.ChangeStatus
    acting_for: str | None
    if_match: int | None = None


@dataclass(frozen=True, slots=True)
class IssueApiKey(Command):
    """`by_operator`: `twinaid keys issue` (services/keys_admin.py): the expiry as asked, and
    an organisation the registry may not hold."""

    organisation_id: str
    roles: Sequence[Role]
    label: str
    expires_at: datetime | None
    manager: keys.Manager
    by_operator: bool = False


@dataclass(frozen=True, slots=True)
class RotateApiKey(Command):
    organisation_id: str
    key_id: str
    expires_at: datetime | None
    manager: keys.Manager


@dataclass(frozen=True, slots=True)
class RevokeApiKey(Command):
    organisation_id: str
    key_id: str
    reason: str | None
    manager: keys.Manager
