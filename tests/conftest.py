from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from shared.infra import free_port, start_tansu
from shared.settings import Settings
from shared.testing import fresh_database, test_server_url


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
