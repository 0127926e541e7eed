"""What a consumer checks before it applies anything (issue 17): that an event is its upstream's
own (shared/authenticity.py: chain links, the relay's signatures, a feed page's signed head,
against the keys pinned for the upstream and the key changes it announced), that it agrees
with what was applied (a position applied as another event is a clash, never a duplicate; an
event must link to the one applied before it), and that its data keeps to the upstream's
published schema. A layer of the consumer runner (shared/consumer.py)."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Mapping, Sequence

import asyncpg
from aiokafka import ConsumerRecord

from shared import authenticity, published
from shared.consumer_parking import Parking
from shared.incoming import Incoming
from shared.keys import KEY_CHANGED, KeyRing, UntrustedKey

Batch = list[tuple[Incoming, ConsumerRecord[bytes, bytes] | None]]
# (upstream, position) -> the event applied there and its chain hash
Held = dict[tuple[str, int], tuple[uuid.UUID, bytes | None]]

_HELD_SQL = (
    "SELECT upstream, position, event_id, hash FROM inbox WHERE consumer = $1"
    " AND (upstream, position) IN (SELECT * FROM unnest($2::text[], $3::bigint[]))"
)


async def held_at(conn: asyncpg.Connection, consumer: str, events: Sequence[Incoming]) -> Held:
    """What the inbox holds at each event's position and the one before, in one statement."""
    wanted = [(i.upstream, p) for i in events for p in (i.position, i.position - 1)]
    if not wanted:
        return {}
    rows = await conn.fetch(_HELD_SQL, consumer, [u for u, _ in wanted], [p for _, p in wanted])
    return {
        (r["upstream"], r["position"]): (
            r["event_id"],
            bytes(r["hash"]) if r["hash"] is not None else None,
        )
        for r in rows
    }


def against_applied(
    events: Sequence[Incoming], held: Held, *, skip: Mapping[int, str] | None = None
) -> tuple[dict[int, str], set[str]]:
    """The events (by index, those in `skip` left out) that clash with what was applied, with
    the reason, and the ids of those applied already at their own positions. A position applied
    as another event is a clash, never a duplicate; an event whose previous hash is not the one
    applied at the position before does not belong."""
    clashes: dict[int, str] = {}
    seen: set[str] = set()
    for n, incoming in enumerate(events):
        if skip is not None and n in skip:
            continue
        at = held.get((incoming.upstream, incoming.position))
        if at is not None:
            if at[0] != incoming.event_id:
                clashes[n] = f"position {incoming.position} was applied as event {at[0]}"
            else:
                seen.add(str(incoming.event_id))
            continue
        before = held.get((incoming.upstream, incoming.position - 1))
        if (
            before is not None
            and before[1] is not None
            and incoming.previous_hash is not None
            and before[1] != incoming.previous_hash
        ):
            clashes[n] = f"does not link to position {incoming.position - 1} as applied"
    return clashes, seen


class Checking(Parking):
    ring: KeyRing
    contracts: Mapping[str, published.Contract]

    async def _follow_key_change(self, conn: asyncpg.Connection, incoming: Incoming) -> None:
        """An upstream's announced key change, applied: trusted from now on, and kept, so that
        a restarted consumer trusts it too (load_key_changes)."""
        if incoming.event_type != KEY_CHANGED:
            return
        with contextlib.suppress(UntrustedKey):
            self.ring.announce(incoming.upstream, incoming.data)
        await conn.execute(
            "INSERT INTO consumer_key_changes (consumer, upstream, position, announcement)"
            " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT DO NOTHING",
            self.name,
            incoming.upstream,
            incoming.position,
            json.dumps(dict(incoming.data)),
        )

    async def load_key_changes(self) -> None:
        """Trust again the key changes this consumer applied before (each still has to be
        signed by a key trusted by then: pinned, or announced before it)."""
        async with self.db.connection() as conn:
            rows = await conn.fetch(
                "SELECT upstream, announcement FROM consumer_key_changes WHERE consumer = $1"
                " ORDER BY upstream, position",
                self.name,
            )
        for row in rows:
            with contextlib.suppress(UntrustedKey):
                self.ring.announce(row["upstream"], json.loads(row["announcement"]))

    async def checked(
        self, batch: Batch, *, from_feed: bool = False, signed_head: object = None
    ) -> Batch:
        """The events of `batch` that pass every check, in order; the others quarantined.
        From Kafka: chain link and signature (shared/authenticity.py); what was applied is
        checked by `apply_batch` in its own transaction (`against_applied`). From the feed: the
        chain link to the previous position (set by `catch_up`) for each event, the page's
        `signed_head` for the last, signed by a key trusted for the upstream, and what was
        applied; what follows a break of the chain is dropped. Both: the upstream's published
        schema."""
        failed: dict[int, str] = {}
        parked: dict[int, str] = {}
        if self.settings.consumer_verify:
            if from_feed:
                failed = self._feed_problems(batch, signed_head)
                events = [i for i, _ in batch]
                if events:
                    async with self.db.connection() as conn:
                        held = await held_at(conn, self.name, events)
                    failed.update(against_applied(events, held, skip=failed)[0])
            else:
                members: dict[str, list[int]] = {}
                for n, (incoming, _) in enumerate(batch):
                    members.setdefault(incoming.upstream, []).append(n)
                for indexes in members.values():
                    found = authenticity.verify(self.ring, [batch[n][0] for n in indexes])
                    failed.update({indexes[k]: reason for k, reason in found.items()})
        for n, (incoming, _) in enumerate(batch):
            contract = self.contracts.get(incoming.upstream)
            if n in failed or contract is None:
                continue
            problem = contract.problem(incoming.event_type, incoming.schema_version, incoming.data)
            if problem is not None:
                parked[n] = f"breaks the published schema of {incoming.event_type}: {problem}"
        if from_feed and failed:  # what follows a break of the chain cannot be checked
            first = min(failed)
            failed = {first: failed[first]}
            batch = batch[: first + 1]
        passed = []
        for n, (incoming, record) in enumerate(batch):
            if n in failed:
                await self.quarantine(record, incoming, failed[n])
            elif n in parked:
                await self.quarantine(record, incoming, parked[n], authentic=True)
            else:
                passed.append((incoming, record))
        return passed

    def _feed_problems(self, batch: Batch, signed_head: object) -> dict[int, str]:
        """A feed page's events: each linked to the one before, the last under a head signed
        by a key trusted for the upstream (or announced by the page's own events)."""
        failed: dict[int, str] = {}
        for n, (incoming, _) in enumerate(batch):
            if incoming.previous_hash is not None and (
                problem := authenticity.link_problem(incoming, ring=self.ring)
            ):
                failed[n] = f"from the feed: {problem}"
        if batch and not failed:
            last = batch[-1][0]
            # a key the page's own events announce may sign its head (each announcement is
            # signed by a key trusted before it)
            authenticity.follow_key_changes(self.ring, [i for i, _ in batch])
            problem = authenticity.head_problem(
                self.ring,
                last.upstream,
                signed_head,
                position=last.position,
                chain_hash=last.chain_hash,
            )
            if problem is not None:  # nothing of the page is shown authentic
                failed[0] = f"from the feed: {problem}"
        return failed
