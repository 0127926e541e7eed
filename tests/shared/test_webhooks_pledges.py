"""The pledges service's webhook read policy (services/pledges/webhook_access.py): a need's
internal note and contact, in its posting and in its revisions, reach the recipient and those
who read everything, never another organisation; events of no record reach no one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import pytest

from services.pledges import webhook_access
from shared import db as dbmod
from shared import directory
from shared.auth import Principal, Role
from shared.events import Metadata, RecordedEvent
from shared.testing import fresh_database

pytestmark = pytest.mark.once

NOW = datetime(2022, 6, 1, 9, 0, tzinfo=UTC)
CONTACT = {"name": "Olena Koval", "phone": "+380 57 000 00 00"}


def event(stream_type: str, stream_id: str, data: dict[str, object]) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type=stream_type,
        stream_id=stream_id,
        stream_version=1,
        event_type=f"pledges.{stream_type}-x",
        schema_version=1,
        occurred_at=NOW,
        recorded_at=NOW,
        data=data,
        metadata=Metadata(organisation="kharkiv"),
        position=1,
    )


def key(organisation: str, *roles: Role) -> Principal:
    return Principal(key_id=f"k-{organisation}", organisation=organisation, roles=frozenset(roles))


async def test_a_needs_internal_note_and_contact_reach_its_recipient_only(pg_server: str) -> None:
    schema = (directory.SCHEMA, dbmod.schema_text("services.pledges"))
    async with fresh_database(pg_server, *schema) as url:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(
                "INSERT INTO needs (need_id, recipient_id, kind, category, description, target,"
                " priority, state, status, gap, posted_at, changed_at, version)"
                " VALUES ('n1', 'kharkiv', 'item', 'generators', 'generators', 50, 'high', '{}',"
                " 'open', 50, $1, $1, 2)",
                NOW,
            )
            posted = event(
                "need",
                "need-n1",
                {"need_id": "n1", "internal_note": "for the hospital", "contact": CONTACT},
            )
            revised = event(
                "need",
                "need-n1",
                {
                    "need_id": "n1",
                    "changes": {"internal_note": "now urgent", "priority": "critical"},
                    "previous": {"internal_note": "for the hospital", "priority": "high"},
                    "reason": "winter",
                },
            )
            own = await webhook_access.seen(conn, key("kharkiv", Role.MEMBER), posted)
            admin = await webhook_access.seen(conn, key("twinaid", Role.REGISTRY_ADMIN), posted)
            other = await webhook_access.seen(conn, key("lille", Role.MEMBER), posted)
            other_revised = await webhook_access.seen(conn, key("lille", Role.MEMBER), revised)
            unknown = await webhook_access.seen(
                conn, key("kharkiv", Role.MEMBER), event("need", "need-n2", {"need_id": "n2"})
            )
            checkpoint = await webhook_access.seen(
                conn, key("kharkiv", Role.MEMBER), event("audit", "audit-chain", {})
            )
        finally:
            await conn.close()
    assert own.data == posted.data and admin.data == posted.data
    assert own.concerns == other.concerns == frozenset({"kharkiv"})
    assert other.data == {"need_id": "n1"}
    assert other_revised.data == {
        "need_id": "n1",
        "changes": {"priority": "critical"},
        "previous": {"priority": "high"},
        "reason": "winter",
    }
    assert unknown.data is None and checkpoint.data is None
