from __future__ import annotations

import asyncio
import json
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from shared import chain, outbox, signing
from shared.events import RecordedEvent
from shared.infra import free_port, start_tansu
from shared.settings import SERVICES, Settings
from shared.testing import drop_templates, fresh_database, test_server_url

# One signing key for the test session, pinned for every service: every relay (in this process
# or one a test starts, which inherits the environment) signs with it and every consumer trusts
# it. Tests of trust make keys of their own.
SESSION_KEY_FILE = Path(tempfile.mkdtemp(prefix="twinaid-keys-")) / "session.ed25519"
SESSION_SIGNER = signing.Signer.from_file(SESSION_KEY_FILE)
os.environ["SIGNING_KEY_FILE"] = str(SESSION_KEY_FILE)
os.environ["TRUSTED_KEYS"] = json.dumps({s: [SESSION_SIGNER.public_key] for s in SERVICES})


@pytest.fixture(scope="session")
def pg_server() -> str:
    return test_server_url()


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    given = os.environ.get("TWINAID_TEST_KAFKA")
    if given:
        yield given
        return
    port = free_port()
    proc = start_tansu(port)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
async def db_url(pg_server: str) -> AsyncIterator[str]:
    """A fresh database with only the shared event-log schema."""
    async with fresh_database(pg_server) as url:
        yield url


def settings_for(db_url: str, kafka: str = "127.0.0.1:1", **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": db_url,
        "kafka_bootstrap_servers": kafka,
        "kafka_idempotence": False,
        "relay_poll_interval": 0.2,
        "consumer_gap_grace": 0.5,
        "auth_cache_ttl": 0,
        "log_level": "WARNING",
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def published_headers(
    service: str,
    event: RecordedEvent,
    *,
    previous: bytes = chain.GENESIS,
    signer: signing.Signer = SESSION_SIGNER,
) -> tuple[list[tuple[str, bytes]], bytes]:
    """The headers a relay publishes `event` with, signed by `signer`, and its chain hash: a
    test-made event (no hash) is sealed onto `previous` first."""
    assert event.position is not None
    if event.hash is None:
        event = replace(event, hash=chain.link(previous, event, position=event.position))
    assert event.hash is not None
    headers, _ = outbox.headers_for(service, event, signer=signer, previous=previous)
    return headers, event.hash


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The template databases fresh_database copied from go with the session."""
    asyncio.run(drop_templates())
