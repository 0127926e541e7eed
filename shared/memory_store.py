"""The in-memory event store: for pure domain tests; passes the same contract suite."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from shared import chain, chain_verifier
from shared.errors import Conflict
from shared.event_store import ConcurrencyConflict, check_storable
from shared.events import Metadata, NewEvent, RecordedEvent, Selection


class InMemoryEventStore:
    """For pure domain tests: same contract, one process, sealed at append."""

    def __init__(self) -> None:
        self._events: list[RecordedEvent] = []
        self._hash = chain.GENESIS

    async def append(
        self,
        *,
        stream_type: str,
        stream_id: str,
        expected_version: int,
        events: Sequence[NewEvent],
        metadata: Metadata,
        now: datetime,
    ) -> list[RecordedEvent]:
        actual = sum(1 for e in self._events if e.stream_id == stream_id)
        if actual != expected_version:
            raise ConcurrencyConflict(stream_id=stream_id, expected=expected_version, actual=actual)
        known = {e.event_id for e in self._events}
        if any(e.event_id in known for e in events):
            raise Conflict("an event with this id was already recorded")
        # what the database refuses (events_sealable_v1), refused here too, before anything
        check_storable(events, now=now)
        stored_metadata = Metadata.from_dict(json.loads(chain.encode(metadata.as_dict())))
        stored = [json.loads(chain.encode(new.data)) for new in events]
        recorded = []
        for i, new in enumerate(events):
            event = RecordedEvent(
                event_id=new.event_id,
                stream_type=stream_type,
                stream_id=stream_id,
                stream_version=expected_version + i + 1,
                event_type=new.event_type,
                schema_version=new.schema_version,
                occurred_at=new.occurred_at or now,
                recorded_at=now,
                data=stored[i],
                metadata=stored_metadata,
            )
            position = len(self._events) + 1
            self._hash = chain.link(self._hash, event, position=position)
            self._events.append(replace(event, position=position, hash=self._hash))
            recorded.append(event)
        return recorded

    async def read_stream(
        self,
        stream_id: str,
        *,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        after_version: int = 0,
        limit: int | None = None,
    ) -> list[RecordedEvent]:
        found = [
            e
            for e in self._events
            if e.stream_id == stream_id
            and e.stream_version > after_version
            and (as_of is None or e.occurred_at <= as_of)
            and (known_at is None or e.recorded_at <= known_at)
        ]
        return found if limit is None else found[:limit]

    async def read_all(
        self, *, after: int, limit: int, where: Selection | None = None
    ) -> list[RecordedEvent]:
        w = where or Selection()
        return [e for e in self._events[after:] if w.matches(e)][:limit]

    async def seal(self, *, limit: int = 1000) -> int:
        return 0

    async def verify(self) -> chain.Verdict:
        entries = [
            chain.ChainEntry(
                position=e.position or 0, event_id=str(e.event_id), hash=e.hash or b"", event=e
            )
            for e in self._events
        ]
        return chain_verifier.verify(entries, sealed_head=len(self._events))
