"""The pledges service's webhook read policy (services/pledges/webhook_access.py): a record's
events reach its parties and those who read everything, as its history does (403 to anyone
else), never another organisation; events of no record reach no one."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from services.pledges import webhook_access
from services.pledges.app import create_app
from shared import db as dbmod
from shared import directory, webhook_dispatch
from shared.auth import Principal, Role
from shared.events import Metadata, RecordedEvent
from shared.testing import fresh_database, seal_everything
from tests.conftest import settings_for
from tests.pledges.conftest import GENERATORS_NEED, PledgesApi, generators_pledge, seed_registry
from tests.shared.test_webhooks import FAST, Receiver, free_port

pytestmark = pytest.mark.once

NOW = datetime(2022, 6, 1, 9, 0, tzinfo=UTC)
NOTE = "40 generators handed to Dr Hanna Levchenko at the regional hospital"
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
    assert other.data is None and other_revised.data is None
    assert unknown.data is None and checkpoint.data is None


async def test_a_pledges_events_never_reach_an_unrelated_organisations_subscription(
    pg_server: str,
) -> None:
    """Bucha's member subscribes to the whole log (from position 1): the API answers it 403 for
    the pledge's history, so its subscription gets none of the pledge's events (the donor's
    note on its figures among them) nor the need's; Lille, the donor, gets them all, whole."""
    schema = (directory.SCHEMA, dbmod.schema_text("services.pledges"))
    async with fresh_database(pg_server, *schema) as url:
        settings = settings_for(url, "127.0.0.1:1", **FAST)
        app = create_app(settings)
        receiver = Receiver(free_port())
        await receiver.start()
        db = dbmod.Database(url, max_size=4)
        await db.open()
        dispatcher = webhook_dispatch.Dispatcher(
            service="pledges", settings=settings, db=db, access=webhook_access.seen
        )
        try:
            async with app.router.lifespan_context(app):
                await seed_registry(url)
                transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
                async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                    api = PledgesApi(client, app, url)
                    made = "2023-02-01T00:00:00+00:00"  # the figure below is dated after
                    need = {**GENERATORS_NEED, "occurred_at": made}
                    await api.ok("/v1/needs", need, by="kharkiv")
                    pledge = generators_pledge(commit=True, occurred_at=made)
                    await api.ok("/v1/pledges", pledge, by="lille")
                    await api.ok(
                        "/v1/pledges/lille-generators/lines/generators/donor-figures",
                        {"quantity": "40", "reported_on": "2023-02-20", "note": NOTE},
                        by="lille",
                    )
                    history = await client.get(
                        "/v1/pledges/lille-generators/history", headers=await api.as_("bucha")
                    )
                    assert history.status_code == 403
                    for organisation in ("bucha", "lille"):
                        answer = await client.post(
                            "/v1/webhooks",
                            json={"url": receiver.url(f"/{organisation}"), "from_position": 1},
                            headers=await api.as_(organisation),
                        )
                        assert answer.status_code == 201, answer.text
                        receiver.secrets[f"/{organisation}"] = answer.json()["secret"]
                    conn = await asyncpg.connect(url)
                    try:
                        await seal_everything(conn)
                        pledged = await conn.fetchval(
                            "SELECT count(*) FROM events WHERE stream_id = $1",
                            "pledge-lille-generators",
                        )
                    finally:
                        await conn.close()
                    while await dispatcher.round():
                        pass
        finally:
            await receiver.stop()
            await dispatcher.http.aclose()
            await db.close()
    assert receiver.refused == []
    assert receiver.at("/bucha") == []
    lille = [r.body["data"] for r in receiver.at("/lille")]
    assert sum(d["stream_id"] == "pledge-lille-generators" for d in lille) == pledged >= 2
    figures = [d for d in lille if d["event_type"] == "pledges.donor-figure-reported"]
    assert [d["data"]["note"] for d in figures] == [NOTE]
