"""The registry's personal data (shared/privacy.py): an organisation's contacts.

A contact's name and email are sealed under the person's own key, recorded by the organisation
whose contact they are; the role stays in clear (it names a function). The log, the broker,
the `organisations` read model and the webhooks hold the sealed contact; the organisation view
reveals it to the organisation itself and registry administrators (`auth.sees_contacts`).

Retention: a contact no longer among any organisation's current contacts (replaced) is erased
once the replacement is older than the retention period (`RETENTION_DUE`, run by the worker).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg

from services.registry import events as ev
from shared import privacy as core
from shared.projections import Projection

SERVICE = "registry"
PERSONAL = ("name", "email")  # a contact's role names a function: kept in clear
PERSONAL_TYPES = (ev.ORGANISATION_CONTACTS_CHANGED,)

# $1: the cut-off instant (now - retention), $2: a limit. A subject is due when it is among no
# organisation's current contacts and every contacts change that named it was replaced by a
# later contacts change of its organisation recorded before the cut-off.
RETENTION_DUE = f"""
    SELECT s.subject_id FROM privacy_subjects s
    WHERE s.erased_at IS NULL AND s.last_recorded_at < $1
      AND NOT EXISTS (
          SELECT 1 FROM organisations o
          WHERE o.contacts @> jsonb_build_array(jsonb_build_object('subject_id', s.subject_id)))
      AND NOT EXISTS (
          SELECT 1 FROM privacy_occurrences p JOIN events e ON e.event_id = p.event_id
          WHERE p.subject_id = s.subject_id
            AND NOT EXISTS (
                SELECT 1 FROM events r
                WHERE r.stream_id = e.stream_id AND r.stream_version > e.stream_version
                  AND r.event_type = '{ev.ORGANISATION_CONTACTS_CHANGED}' AND r.recorded_at < $1))
    ORDER BY s.last_recorded_at, s.subject_id
    LIMIT $2
"""


def projection() -> Projection:
    """privacy_occurrences of the registry: which events hold each contact."""
    return core.projection(PERSONAL_TYPES)


async def seal_contact(
    conn: asyncpg.Connection, organisation_id: str, contact: Mapping[str, Any], *, now: datetime
) -> dict[str, Any]:
    """A contact of `organisation_id` sealed (already sealed: as it is)."""
    clear = {k: v for k, v in contact.items() if v is not None}
    return await core.seal_person(
        conn, clear, service=SERVICE, organisation=organisation_id, personal=PERSONAL, now=now
    )


async def seal_contacts(
    conn: asyncpg.Connection,
    organisation_id: str,
    contacts: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
) -> tuple[dict[str, Any], ...]:
    return tuple([await seal_contact(conn, organisation_id, c, now=now) for c in contacts])


async def shown(
    conn: asyncpg.Connection, contacts: Sequence[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """The contacts as the organisation view shows them to those who may see them: each
    opened (name and email; "(erased)" once the person was erased), its subject id and
    whether it was erased. A contact of an older log (in clear) has no subject."""
    out = []
    for c in await core.reveal(conn, list(contacts)):
        out.append(
            {
                "role": c.get("role"),
                "name": c.get("name"),
                "email": c.get("email"),
                "subject_id": c.get("subject_id"),
                "erased": bool(c.get("erased", False)),
            }
        )
    return out


def _plain(contact: Mapping[str, Any]) -> tuple[Any, ...]:
    return (contact.get("role"), contact.get("name"), contact.get("email"))


async def same_people(
    conn: asyncpg.Connection,
    held: Sequence[Mapping[str, Any]],
    wanted: Sequence[Mapping[str, Any]],
) -> bool:
    """Whether the contacts held (sealed, or clear from an older log) are `wanted` (clear):
    the same roles, names and emails in the same order. An erased contact is never the same."""
    if len(held) != len(wanted):
        return False
    shown = await core.reveal(conn, list(held))
    return all(
        not h.get("erased") and _plain(h) == _plain(w) for h, w in zip(shown, wanted, strict=True)
    )


async def seal_v1(
    conn: asyncpg.Connection, event_type: str, data: dict[str, Any], *, now: datetime
) -> dict[str, Any] | None:
    """A version 1 payload holding contacts in clear, as its version 2 (sealed) payload; None
    when there is nothing to seal (another event type, or its contacts already sealed). For
    migrating events written before personal data was sealed."""
    if event_type != ev.ORGANISATION_CONTACTS_CHANGED:
        return None
    contacts = data.get("contacts") or []
    if all(core.is_sealed(c) for c in contacts):
        return None
    organisation_id = str(data["organisation_id"])
    sealed = await seal_contacts(conn, organisation_id, contacts, now=now)
    out = {**data, "contacts": list(sealed)}  # only the contacts change
    ev.OrganisationContactsChanged.model_validate(out)
    return out
