"""The registry's command handlers (HANDLERS: one per command type, registered by the modules
of this package) and the repositories they load and append through, one per stream type."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from services.registry import domain, projections
from services.registry import events as ev
from services.registry.domain import api_keys as keys
from shared.commands import Command, Handlers
from shared.events import Metadata
from shared.repository import PostgresUnitOfWork, Repository

HANDLERS = Handlers("registry")

ORGANISATIONS = Repository(
    stream_type=ev.STREAM_ORGANISATION,
    codec=ev.CODEC,
    initial=domain.Organisation,
    evolve=domain.evolve_organisation,
)
PARTNERSHIPS = Repository(
    stream_type=ev.STREAM_PARTNERSHIP,
    codec=ev.CODEC,
    initial=domain.Partnership,
    evolve=domain.evolve_partnership,
)
# a key's events; its state is its row (ports.api_key), which also covers the keys the
# operator issued outside the log: the stream gives the version
API_KEYS = Repository(
    stream_type=ev.STREAM_API_KEY, codec=ev.CODEC, initial=keys.ApiKey, evolve=keys.evolve_key
)


async def run(
    conn: asyncpg.Connection, command: Command, *, metadata: Metadata, now: datetime
) -> Any:
    """A command run on the caller's transaction, with the registry's projections: for the
    writes that do not go through shared.web.write (issuing and rotating a key answer its
    secret, which an Idempotency-Key's stored answer would keep; the operator's CLI)."""
    uow = PostgresUnitOfWork(conn, projections.ALL, metadata, now)
    return await HANDLERS.handle(command, uow)
