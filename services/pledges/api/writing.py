"""What every write route takes: the request, as authorised (auth.py), ready to send its command
(shared/web.py `write`: idempotency, race retries, the handler in its transaction)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from services.pledges import auth
from shared.auth import Principal
from shared.commands import Command
from shared.deps import Caller, Ctx, IfMatch, ServiceContext
from shared.events import Metadata
from shared.web import write


@dataclass(frozen=True, slots=True)
class Write:
    """`acting_for`: the organisation the caller writes for (None: an administrator);
    `if_match`: the version the caller read (If-Match on a change), None for any."""

    request: Request
    ctx: ServiceContext
    caller: Principal
    acting_for: str | None
    if_match: int | None = None

    def acting_as(self, organisation: str) -> str | None:
        """`acting_for` once the caller may write for `organisation` (Forbidden otherwise)."""
        return auth.writer(self.caller, acting_as=organisation)

    def on(self, **record: str) -> dict[str, Any]:
        """The fields every command on an existing record carries (commands.NeedChange,
        PledgeChange): the record (`pledge_id=...`), whom the caller acts for, the version read."""
        return {**record, "acting_for": self.acting_for, "if_match": self.if_match}

    async def send(
        self,
        status: int,
        command: Command,
        *,
        attempt: Callable[[Metadata], Awaitable[Any | None]] | None = None,
    ) -> JSONResponse:
        """`write` (shared/web.py); `attempt`: the command's one-statement form, e.g. joining
        a group commit (None: it cannot decide alone)."""
        return await write(self.ctx, self.request, self.caller, status, command, attempt=attempt)


async def _creating(request: Request, ctx: Ctx, caller: Caller, acting_for: auth.Writing) -> Write:
    return Write(request, ctx, caller, acting_for)


async def _changing(
    request: Request, ctx: Ctx, caller: Caller, acting_for: auth.Writing, if_match: IfMatch = None
) -> Write:
    return Write(request, ctx, caller, acting_for, if_match)


Creating = Annotated[Write, Depends(_creating)]  # a new record
Changing = Annotated[Write, Depends(_changing)]  # a change to one, If-Match allowed
