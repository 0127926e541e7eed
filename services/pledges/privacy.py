"""The pledges service's personal data (shared/privacy.py): the contacts of needs and pledges,
and who signed for a delivery.

A need's contact is sealed as its recipient records them, a pledge's as its donor does: name,
email and phone under the person's own key, the role in clear. Who confirmed a delivery comes
sealed by shipments (a shipments subject, `confirmed_by` of shipments.delivery-confirmed v2)
and is kept as it came, so an erasure at shipments reaches this copy too: pledges shows its name
as "(held by shipments)". A name that came in clear (shipments.delivery-confirmed v1) is sealed
here, as the delivery's recipient records them.

The log, the broker, the read models (`needs.contact`, `pledges.contact`,
`deliveries.confirmed_by`) and the webhooks hold persons sealed; the views reveal them to those
who see contacts today (`auth.sees_internal`: the organisations concerned, auditors and
administrators); the exports (IATI, HXL tables and reports) carry no persons.

Retention (`RETENTION_DUE`, the worker's): a person is erased once every need and pledge naming
them ended (a need closed or cancelled, a pledge fulfilled or withdrawn) longer ago than the
retention period.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from services.pledges import events as ev
from shared import privacy as core
from shared import service_retention
from shared.projections import Projection

SERVICE = "pledges"
CONTACT = ("name", "email", "phone")  # a contact's personal fields; the role stays in clear
CONFIRMED_BY = ("name",)
PERSONAL_TYPES = (ev.NEED_POSTED, ev.PLEDGE_MADE, ev.DELIVERY_RECORDED)
HELD_ELSEWHERE = "(held by shipments)"

# Due: persons named only in needs closed or cancelled and pledges fulfilled or withdrawn before
# the cut-off (shared/service_retention.py)
RETENTION_DUE = service_retention.due_once_ended(
    joins=f"""
      LEFT JOIN needs n
        ON o.stream_id LIKE '{ev.STREAM_NEED}-%'
       AND n.need_id = substr(o.stream_id, {len(ev.STREAM_NEED) + 2})
      LEFT JOIN pledges p
        ON o.stream_id LIKE '{ev.STREAM_PLEDGE}-%'
       AND p.pledge_id = substr(o.stream_id, {len(ev.STREAM_PLEDGE) + 2})""",
    still_held="""NOT coalesce(
            (n.state IN ('closed', 'cancelled') AND n.changed_at < $1)
            OR (p.status IN ('fulfilled', 'withdrawn') AND p.changed_at < $1),
            false)""",
)


def projection() -> Projection:
    """privacy_occurrences of pledges: which events hold each person."""
    return core.projection(PERSONAL_TYPES)


async def seal_contact(
    conn: asyncpg.Connection,
    organisation_id: str,
    contact: Mapping[str, Any] | None,
    *,
    now: datetime,
) -> dict[str, Any] | None:
    """A contact as `organisation_id` records it, sealed (already sealed: as it is)."""
    if contact is None:
        return None
    clear = {k: v for k, v in contact.items() if v is not None}
    return await core.seal_person(
        conn, clear, service=SERVICE, organisation=organisation_id, personal=CONTACT, now=now
    )


async def sealed_confirmed_by(
    conn: asyncpg.Connection,
    confirmed_by: Mapping[str, Any] | None,
    *,
    recipient_id: str | None,
    now: datetime,
) -> dict[str, Any] | None:
    """Who confirmed a delivery, as pledges keeps it: sealed by shipments (v2) as it came
    (subject, sealed fields, role); in clear (v1): the name sealed here, recorded by the
    delivery's recipient."""
    if confirmed_by is None:
        return None
    if core.is_sealed(confirmed_by):
        kept = ("subject_id", "personal", "sealed", "role")
        return {k: confirmed_by[k] for k in kept if confirmed_by.get(k) is not None}
    clear = {k: confirmed_by.get(k) for k in ("name", "role") if confirmed_by.get(k) is not None}
    if not isinstance(clear.get("name"), str) or not str(clear["name"]).strip():
        return None  # no one named: nothing personal to keep
    return await core.seal_person(
        conn,
        clear,
        service=SERVICE,
        organisation=recipient_id or "shipments",
        personal=CONFIRMED_BY,
        now=now,
    )


def _contact_shown(c: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "name": c.get("name"),
        "role": c.get("role"),
        "email": c.get("email"),
        "phone": c.get("phone"),
        "subject_id": c.get("subject_id"),
        "erased": bool(c.get("erased", False)),
    }


async def shown_contact(
    conn: asyncpg.Connection, contact: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """A contact as the views show it to those who may see it: opened (or "(erased)"), with
    its subject id (null for a contact of an older log, in clear) and whether it was erased."""
    if contact is None:
        return None
    return _contact_shown(await core.reveal(conn, dict(contact)))


async def shown_contacts(conn: asyncpg.Connection, answers: list[dict[str, Any]]) -> None:
    """Every answer's `contact` (where it has one) opened in place, with one key lookup."""
    held = [a["contact"] for a in answers if a.get("contact")]
    if not held:
        return
    opened = iter(await core.reveal(conn, held))
    for answer in answers:
        if answer.get("contact"):
            answer["contact"] = _contact_shown(next(opened))


WITHHELD = "(withheld)"


def receiver_withheld(data: Mapping[str, Any]) -> dict[str, Any]:
    """A delivery's data as a pledge's donor sees it: who signed for the goods is the
    recipient's (and shipments') to show, so the donor gets the role alone, no name and no
    subject id (which would tell the same person across deliveries)."""
    person = data.get("confirmed_by")
    if not isinstance(person, Mapping):
        return dict(data)
    return {**data, "confirmed_by": {"role": person.get("role"), "name": WITHHELD}}


async def revealed(conn: asyncpg.Connection, value: Any) -> Any:
    """A history's events (or any JSON) with every person opened, for those who may see the
    record's persons; a person shipments holds shows "(held by shipments)"."""
    return await core.reveal(conn, value)


async def seal_v1(
    conn: asyncpg.Connection, event_type: str, data: dict[str, Any], *, now: datetime
) -> dict[str, Any] | None:
    """A version 1 payload holding a person in clear, as its version 2 (sealed) payload; None
    when there is nothing to seal. For migrating events written before persons were sealed:
    a need's contact as its recipient records it, a pledge's as its donor does, who confirmed a
    delivery as the delivery's recipient does."""
    model: type[BaseModel]
    if event_type == ev.NEED_POSTED:
        owner, field, model = data.get("recipient_id"), "contact", ev.NeedPosted
    elif event_type == ev.PLEDGE_MADE:
        owner, field, model = data.get("donor_id"), "contact", ev.PledgeMade
    elif event_type == ev.DELIVERY_RECORDED:
        owner, field = data.get("recipient_id"), "confirmed_by"
        model = ev.PREVIOUS[ev.DELIVERY_RECORDED, 2]
    else:
        return None
    person = data.get(field)
    if person is None or core.is_sealed(person):
        return None
    if field == "contact":
        sealed = await seal_contact(conn, str(owner), person, now=now)
    else:
        sealed = await sealed_confirmed_by(
            conn, person, recipient_id=str(owner) if owner else None, now=now
        )
    out = {**data, field: sealed}  # only the person changes
    model.model_validate(out)
    return out
