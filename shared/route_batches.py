"""What a write route does when its requests join a group commit (shared/batching.py; the
registry's registrations, pledges, shipments' road entries): the batch runs in one
transaction, and once more with savepoints when the database refused one of its appends; each
request is answered what its own command answered, or raised (`join`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg

from shared.commands import Command
from shared.deps import ServiceContext
from shared.events import Metadata
from shared.group_commit import Batched, SavepointsNeeded

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Batch(Protocol[T_co]):
    """A batch's run on a connection (e.g. a handler's `..._together` with its batch given)."""

    def __call__(self, conn: asyncpg.Connection, /, *, savepoints: bool) -> Awaitable[T_co]: ...


async def in_transaction(ctx: ServiceContext, run: Batch[T]) -> T:
    """The batch run in a transaction of its own, without savepoints; when one of its appends
    was refused (SavepointsNeeded: the transaction is undone), again in a new one with every
    command in a savepoint (shared/group_commit.py)."""
    try:
        async with ctx.db.transaction() as conn:
            return await run(conn, savepoints=False)
    except SavepointsNeeded:
        async with ctx.db.transaction() as conn:
            return await run(conn, savepoints=True)


def answered(answer: Any) -> dict[str, Any]:
    """A request's answer from its batch: its command's result, or the error it raised,
    raised here (as the request would have alone)."""
    if isinstance(answer, Exception):
        raise answer
    result: dict[str, Any] = answer
    return result


async def join(
    ctx: ServiceContext,
    name: str,
    run: Callable[[list[Batched]], Awaitable[Sequence[Any]]],
    command: Command,
    metadata: Metadata,
) -> dict[str, Any]:
    """The request's command sent to the service's group commit `name` (`run` runs a batch
    of them), answered as it would be alone: its result, or its error raised."""
    together = ctx.group_commit(name, run)
    return answered(await together.submit(Batched(command, metadata, ctx.clock())))
