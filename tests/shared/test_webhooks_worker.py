"""The registry's worker (its relay sealing the log, the real broker) runs the webhook
dispatcher: an organisation registered through the API reaches two subscribers, its contacts
only the organisation's own (the registry API's rule for contacts)."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest

from services.registry import webhook_access
from services.registry.app import create_app
from shared import db as dbmod
from shared.auth import Role
from shared.infra import free_port
from shared.testing import fresh_database, issue_key
from shared.worker import Worker
from tests.conftest import settings_for
from tests.shared.test_webhooks import FAST, Receiver

pytestmark = pytest.mark.once

REGISTRY = dbmod.schema_text("services.registry")
CONTACTS = [{"role": "mayor's office", "name": "Ihor Terekhov", "email": "mayor@kharkiv.example"}]


async def test_the_worker_delivers_registry_events_with_contacts_for_their_organisation_only(
    pg_server: str, kafka_bootstrap: str
) -> None:
    async with fresh_database(pg_server, REGISTRY) as url:
        settings = settings_for(
            url,
            kafka_bootstrap,
            kafka_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
            worker_health_port=free_port(),
            checkpoint_interval=0,
            **FAST,
        )
        app = create_app(settings)
        worker = Worker(
            service="registry",
            settings=settings,
            schema=[REGISTRY],
            handlers={},
            webhook_access=webhook_access.seen,
        )
        receiver = Receiver(free_port())
        await receiver.start()
        stop = asyncio.Event()
        running = asyncio.create_task(worker.run(stop))
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=app), base_url="http://t"
                ) as api,
            ):

                async def key(organisation: str, role: Role) -> dict[str, str]:
                    token = await issue_key(url, organisation=organisation, roles=[role])
                    return {"Authorization": f"Bearer {token}"}

                for organisation in ("kharkiv", "lille"):
                    answer = await api.post(
                        "/v1/webhooks",
                        json={"url": receiver.url(f"/{organisation}")},
                        headers=await key(organisation, Role.MEMBER),
                    )
                    assert answer.status_code == 201, answer.text
                    receiver.secrets[f"/{organisation}"] = answer.json()["secret"]
                body: dict[str, Any] = {
                    "organisation_id": "kharkiv",
                    "name": "Kharkiv",
                    "kind": "municipality",
                    "country": "UA",
                    "contacts": CONTACTS,
                }
                answer = await api.post(
                    "/v1/organisations",
                    json=body,
                    headers=await key("twinaid", Role.REGISTRY_ADMIN),
                )
                assert answer.status_code == 201, answer.text
                deadline = asyncio.get_running_loop().time() + 20
                while len(receiver.at("/kharkiv")) < 2 or len(receiver.at("/lille")) < 2:
                    assert asyncio.get_running_loop().time() < deadline, "nothing delivered"
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await running
            await receiver.stop()
    assert receiver.refused == []
    types = ["registry.organisation-registered", "registry.organisation-contacts-changed"]
    for path in ("/kharkiv", "/lille"):
        assert [r.body["type"] for r in receiver.at(path)] == types
    registered, own = (r.body["data"] for r in receiver.at("/kharkiv"))
    assert receiver.at("/lille")[0].body["data"] == registered  # no contacts in it
    other = receiver.at("/lille")[1].body["data"]
    # the contact travels sealed, as the log holds it (README "Personal data"): its subject,
    # role and ciphertext, no name; the organisation's view shows the name to itself
    (contact,) = own["data"]["contacts"]
    assert contact["subject_id"].startswith("registry-") and contact["sealed"], own
    assert "Terekhov" not in json.dumps(own), own
    assert other["data"] == {"organisation_id": "kharkiv"}, other
