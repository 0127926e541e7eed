"""How pledges and shipments apply the registry's key events to their own api_keys (shared/
api_keys.py), through the consumer's handlers on real PostgreSQL: an issued key authenticates,
a republished issue changes nothing, a rotation replaces the secret (and brings in a key the
service never held), a revocation stops it; an event that would hand a held key another secret,
move a key to another organisation or rotate a revoked key is quarantined, changing nothing."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.pledges import subscriptions as pledges_subscriptions
from services.shipments import subscriptions as shipments_subscriptions
from shared import auth, directory
from shared import db as dbmod
from shared.auth import Authenticator, Role
from shared.consumer import ConsumerRunner
from shared.db import Database
from shared.errors import Unauthenticated
from shared.metrics import Metrics
from shared.testing import fresh_database, issue_key
from tests.conftest import settings_for
from tests.pledges.conftest import incoming

NOW = datetime.now(UTC)
LATER = NOW + timedelta(days=90)
BY = {"key_id": "0123456789abcdef", "organisation": "lille"}


def key_data(token: str, organisation: str = "lille", **more: Any) -> dict[str, Any]:
    key_id, secret = auth.parse_token(token)
    return {
        "key_id": key_id,
        "organisation_id": organisation,
        "roles": ["member"],
        "label": "Lille pledge sync",
        "expires_at": LATER.isoformat(),
        "secret_sha256": hashlib.sha256(secret.encode()).hexdigest(),
        "by": BY,
        **more,
    }


class Copy:
    def __init__(self, runner: ConsumerRunner, pool: asyncpg.Pool) -> None:
        self.runner = runner
        self.auth = Authenticator(pool, ttl=0)
        self.pool = pool

    async def apply(self, event_type: str, data: dict[str, Any]) -> None:
        event = incoming("registry", event_type, data, stream_id=f"api_key-{data['key_id']}")
        await self.runner.apply_with_retries(event, None)

    async def works(self, token: str) -> bool:
        try:
            await self.auth.authenticate(f"Bearer {token}")
        except Unauthenticated:
            return False
        return True

    async def quarantined(self) -> list[str]:
        rows = await self.pool.fetch("SELECT reason FROM quarantine ORDER BY id")
        return [r["reason"] for r in rows]


@pytest.fixture(params=["pledges", "shipments"])
async def copy(request: pytest.FixtureRequest, pg_server: str) -> AsyncIterator[Copy]:
    service = request.param
    handlers = {"pledges": pledges_subscriptions, "shipments": shipments_subscriptions}[service]
    async with fresh_database(
        pg_server, directory.SCHEMA, dbmod.schema_text(f"services.{service}")
    ) as url:
        db = Database(url, max_size=3)
        await db.open()
        try:
            runner = ConsumerRunner(
                service=service,
                settings=settings_for(url),
                db=db,
                metrics=Metrics(service),
                handlers=handlers.HANDLERS,
            )
            yield Copy(runner, db.pool)
        finally:
            await db.close()


async def test_issued_rotated_and_revoked_keys_follow_the_registry(copy: Copy) -> None:
    _, token, _ = auth.new_key()
    await copy.apply("registry.api-key-issued", key_data(token))
    assert await copy.works(token)
    await copy.apply("registry.api-key-issued", key_data(token))  # republished: no change
    key_id = auth.parse_token(token)[0]
    new_token, _ = auth.new_secret(key_id)
    await copy.apply("registry.api-key-rotated", key_data(new_token))
    assert not await copy.works(token) and await copy.works(new_token)
    await copy.apply("registry.api-key-revoked", {"key_id": key_id, "organisation_id": "lille"})
    assert not await copy.works(new_token)
    # a key only the registry held (the operator issued it there): its rotation brings it here
    other, _ = auth.new_secret("00000000000000aa")
    await copy.apply("registry.api-key-rotated", key_data(other))
    assert await copy.works(other)
    # a revocation of a key never held here has nothing to revoke
    await copy.apply(
        "registry.api-key-revoked", {"key_id": "00000000000000bb", "organisation_id": "lille"}
    )
    assert await copy.quarantined() == []


async def test_events_that_would_take_a_key_over_are_quarantined(copy: Copy) -> None:
    held = await issue_key(
        copy.runner.settings.database_url, organisation="lille", roles=[Role.MEMBER]
    )
    key_id = auth.parse_token(held)[0]
    intruder, _ = auth.new_secret(key_id)
    await copy.apply("registry.api-key-issued", key_data(intruder))
    await copy.apply("registry.api-key-rotated", key_data(intruder, organisation="kharkiv"))
    assert await copy.works(held) and not await copy.works(intruder)
    # a revocation never fails open: applied even when it names another organisation
    await copy.apply("registry.api-key-revoked", {"key_id": key_id, "organisation_id": "kharkiv"})
    assert not await copy.works(held)
    await copy.apply("registry.api-key-rotated", key_data(intruder))
    assert not await copy.works(intruder)
    reasons = await copy.quarantined()
    assert len(reasons) == 3, reasons
    assert "held here with another secret" in reasons[0]
    assert "not to kharkiv" in reasons[1]
    assert "was revoked here" in reasons[2]
