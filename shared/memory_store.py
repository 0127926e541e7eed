"""The in-memory event store: for pure domain tests; passes the same contract suite."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Unpack

from shared import chain, chain_verifier
from shared.errors import Conflict
from shared.event_store import Append, ConcurrencyConflict, Window, check_storable, recorded
from shared.events import Metadata, RecordedEvent, Selection


class InMemoryEventStore:
    """For pure domain tests: same contract, one process, sealed at append."""

    def __init__(self) -> None:
        self._events: list[RecordedEvent] = []
        self._hash = chain.GENESIS

    async def append(self, **append: Unpack[Append]) -> list[RecordedEvent]:
        stream_id, expected = append["stream_id"], append["expected_version"]
        actual = sum(1 for e in self._events if e.stream_id == stream_id)
        if actual != expected:
            raise ConcurrencyConflict(stream_id=stream_id, expected=expected, actual=actual)
        known = {e.event_id for e in self._events}
        if any(e.event_id in known for e in append["events"]):
            raise Conflict("an event with this id was already recorded")
        # what the database refuses (events_sealable_v1), refused here too, before anything
        check_storable(append["events"], now=append["now"])
        # as the database gives them back: data and metadata through their stored JSON text
        metadata = Metadata.from_dict(json.loads(chain.encode(append["metadata"].as_dict())))
        new = [
            replace(event, data=json.loads(chain.encode(event.data)), metadata=metadata)
            for event in recorded(**append)
        ]
        for event in new:
            position = len(self._events) + 1
            self._hash = chain.link(self._hash, event, position=position)
            self._events.append(replace(event, position=position, hash=self._hash))
        return new

    async def read_stream(self, stream_id: str, **window: Unpack[Window]) -> list[RecordedEvent]:
        after_version, limit = window.get("after_version", 0), window.get("limit")
        as_of, known_at = window.get("as_of"), window.get("known_at")
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
        entries = [chain.ChainEntry.of(e) for e in self._events]
        return chain_verifier.verify(entries, sealed_head=len(self._events))
