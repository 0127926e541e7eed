"""What every shipments handler shares: the registry of handlers, the convoy a command names
(loaded, authorised, at the version the caller read), recording its new events, the answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from services.shipments import auth, domain
from services.shipments.commands import OnConvoy
from services.shipments.handlers.repositories import CONVOYS
from shared import errors
from shared.auth import Principal
from shared.commands import Handlers
from shared.event_store import recorded
from shared.events import Metadata, NewEvent, RecordedEvent
from shared.repository import UnitOfWork

HANDLERS = Handlers("shipments")


async def existing(
    uow: UnitOfWork,
    command: OnConvoy,
    require: Callable[[Principal, auth.Parties], None],
) -> domain.Convoy:
    """The convoy the command names (NotFound if it has no event), once `require` (one of
    auth.py's rules) lets the caller act on it and it is at the version the caller read
    (If-Match)."""
    state = domain.require_existing(await CONVOYS.load(uow, command.convoy_id))
    require(command.caller, auth.parties(state))
    errors.check_if_match(state.version, command.if_match)
    return state


async def record(
    uow: UnitOfWork,
    state: domain.Convoy,
    events: Sequence[NewEvent],
    *,
    metadata: Metadata | None = None,
) -> domain.Convoy:
    """Append `events` after the version `state` was loaded at and return the state after
    them. The new events are folded once, here, as they will be recorded, and the state kept
    as the convoy's snapshot before the append: the projection (projections.py) starts from
    it (remembered by its last event, so not read back and decoded), folds nothing, and renders
    the convoy once."""
    if not events:
        return state
    meta = metadata if metadata is not None else uow.metadata
    after = CONVOYS.fold(state, as_recorded(state, events, metadata=meta, now=uow.now))
    await CONVOYS.save_snapshot(uow, state.convoy_id, after)
    CONVOYS.remember(events[-1].event_id, after)
    await CONVOYS.append(
        uow, state.convoy_id, expected_version=state.version, events=events, metadata=meta
    )
    return after


def as_recorded(
    state: domain.Convoy, events: Sequence[NewEvent], *, metadata: Metadata, now: datetime
) -> list[RecordedEvent]:
    """The events as the log will hold them once appended after `state`: instants in UTC, as
    the database gives them back (the state folded from them equals the state loaded)."""
    return [
        replace(e, occurred_at=e.occurred_at.astimezone(UTC), recorded_at=now.astimezone(UTC))
        for e in recorded(
            stream_type=CONVOYS.stream_type,
            stream_id=CONVOYS.stream_id(state.convoy_id),
            expected_version=state.version,
            events=events,
            metadata=metadata,
            now=now,
        )
    ]


def answer(state: domain.Convoy, **extra: Any) -> dict[str, Any]:
    return {
        "convoy_id": state.convoy_id,
        "status": state.status.value,
        "version": state.version,
        **extra,
    }
