"""Field entries from the road: dispatch, checkpoints, border crossings, custody hand-offs,
incidents and arrival, uploaded in batches, late and in any order.

Each entry carries the client's id. An entry sent again with the same content is answered as
the first time and records nothing; the same id with other content is refused. The convoy's
state does not keep every entry: the caller looks the batch's ids up in the log and hands the
entries found to record_entries (`recorded`).

Within one batch an id is one entry: the same entry twice (a client's queue that sent it twice)
is recorded once, both places answered alike and neither counted as recorded before; the same
id with other content is refused as the batch's own mistake (422 naming the later place), not
as a reuse of an entry recorded before (nothing of the batch is recorded, or ever was).

The road ends: an entry dated after the confirmed delivery is refused (but a delay noted, which
touches no goods), and an arrived convoy no
longer moves (a checkpoint or border crossing dated after its arrival is refused; a hand-off or
an incident may still come until the delivery, losses only before it). Entries dated before
the arrival or delivery are taken whenever they are recorded (devices that were offline). An
incident names each affected manifest line once; its losses, with those recorded before and
the batch's earlier entries', never exceed what was loaded.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.shipments import events as ev
from services.shipments.domain import errors
from services.shipments.domain.model import Convoy, ConvoyStatus, entry_of, evolve
from services.shipments.domain.planning import BEFORE_DISPATCH, not_in_future, require_existing
from services.shipments.domain.values import LOSS_KINDS, Entry, Line, PledgeLine, dec, text
from shared.codec import Event
from shared.events import Metadata, NewEvent, RecordedEvent

__all__ = ["FieldEntry", "RoadDecision", "record_entries"]

ZERO = Decimal(0)


def _unsealed(value: Any) -> Any:
    """`value` with each sealed person (shared/privacy.py) reduced to its subject id and clear
    fields: the same person sent again is the same subject, whatever the ciphertext."""
    if isinstance(value, Mapping):
        if "subject_id" in value and "sealed" in value:
            return {k: v for k, v in value.items() if k not in ("sealed", "personal")}
        return {k: _unsealed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_unsealed(v) for v in value]
    return value


@dataclass(frozen=True, slots=True)
class FieldEntry:
    """`details` holds the kind's own fields as JSON (place, outcome, lines, note...), the
    persons of its parties sealed. `sent_digest`: the digest of the entry as sent, persons in
    clear, which entries recorded before persons were sealed carry."""

    entry_id: str
    kind: str
    occurred_at: datetime
    details: Mapping[str, Any]
    sent_digest: str | None = None

    @property
    def digest(self) -> str:
        """What the recorded event carries: a person counts by their subject, never their
        name (a digest of a name could be matched against guessed names)."""
        canonical = {
            "entry_id": self.entry_id,
            "kind": self.kind,
            "occurred_at": self.occurred_at.astimezone(UTC).isoformat(),
            "details": _unsealed(self.details),
        }
        raw = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(raw.encode()).hexdigest()

    def same_as(self, digest: str) -> bool:
        """Whether an entry recorded with `digest` is this one sent again."""
        return digest in (self.digest, self.sent_digest)

    @property
    def as_sent(self) -> str:
        """The digest of the entry as its sender wrote it (persons in clear, before sealing):
        two places of one request hold the same entry when these agree."""
        return self.sent_digest or self.digest

    def organisations(self) -> list[tuple[str, str]]:
        """(field, organisation id) of every registered organisation the entry names."""
        out = []
        for key in ("custody", "from_party", "to_party"):
            party = self.details.get(key)
            if party and party.get("organisation_id"):
                out.append((key, str(party["organisation_id"])))
        return out


@dataclass(frozen=True, slots=True)
class RoadDecision:
    events: list[NewEvent]
    answers: list[dict[str, Any]]  # in the order the entries were sent
    replayed: int


def _common(state: Convoy, entry: FieldEntry, now: datetime) -> None:
    status = state.status
    if status is ConvoyStatus.CLOSED:
        raise errors.wrong_status(
            state,
            f"convoy {state.convoy_id} is closed: entry {entry.entry_id} ({entry.kind}) cannot"
            " be recorded any more",
            entry_id=entry.entry_id,
            error=errors.ConvoyClosed,
        )
    if status is ConvoyStatus.CANCELLED:
        raise errors.wrong_status(
            state,
            f"convoy {state.convoy_id} was cancelled: entry {entry.entry_id} cannot be recorded",
            entry_id=entry.entry_id,
        )
    not_in_future(entry.occurred_at, now, f"entries[{entry.entry_id}].occurred_at")
    if entry.kind == "dispatch":
        return
    if state.dispatched_at is None:
        raise errors.status_forbids(
            state,
            f"record its dispatch before entry {entry.entry_id} ({entry.kind})",
            entry_id=entry.entry_id,
        )
    if entry.occurred_at < state.dispatched_at:
        raise errors.invalid(
            f"entry {entry.entry_id} ({entry.kind}) occurred at {entry.occurred_at.isoformat()},"
            f" before the convoy was dispatched at {state.dispatched_at.isoformat()}",
            name=f"entries[{entry.entry_id}].occurred_at",
            reason="before dispatch",
        )


# what may still happen to an arrived convoy before its delivery is confirmed: a hand-off at the
# destination, an incident (damage, a theft in the warehouse); it no longer moves (a second
# arrival has its own refusal, _arrival)
AFTER_ARRIVAL = frozenset({"custody_handoff", "incident", "arrival"})


def _after_the_end(state: Convoy, entry: FieldEntry) -> None:
    """Nothing happens on the road after the delivery, and an arrived convoy does not move: an
    entry dated later is refused. One dated before, recorded late (a device that was offline),
    is taken as any other."""
    at = entry.occurred_at
    # a delay noted after the delivery (paperwork at the warehouse) touches no goods and moves
    # nothing: still the road's to record, and what a closing follows
    noted = entry.kind == "incident" and entry.details.get("kind") == "delay"
    if state.delivery is not None and at > state.delivery.occurred_at and not noted:
        raise errors.invalid(
            f"entry {entry.entry_id} ({entry.kind}) occurred at {at.isoformat()}, but the"
            f" convoy was delivered at {state.delivery.occurred_at.isoformat()}: nothing"
            " happens on its road after that but a delay noted",
            name=f"entries[{entry.entry_id}].occurred_at",
            reason="after delivery",
        )
    arrived_at = state.arrived_at
    if arrived_at is not None and at > arrived_at and entry.kind not in AFTER_ARRIVAL:
        raise errors.invalid(
            f"entry {entry.entry_id} ({entry.kind}) occurred at {at.isoformat()}, but the"
            f" convoy arrived at {arrived_at.isoformat()}: an arrived convoy does not move"
            " (a hand-off or an incident may still be recorded until its delivery)",
            name=f"entries[{entry.entry_id}].occurred_at",
            reason="after arrival",
        )


def _over_commitment(
    state: Convoy,
    entry: FieldEntry,
    pledge_lines: Mapping[tuple[str, str], PledgeLine],
    allocated: Mapping[tuple[str, str], Decimal],
) -> None:
    """What the convoy carries of each pledge line must still fit what the line commits beyond
    what other convoys hold of it: the rule a load is held to (ExceedsRemaining), asked again
    at dispatch, since pledges may have reduced the line since (the convoy's loads were
    allowed then). `allocated`: what every convoy holds of each line, this one included (a
    line missing: this convoy's only)."""
    carried: dict[tuple[str, str], list[Line]] = {}
    for x in state.loaded:
        carried.setdefault((x.pledge_id, x.line_id), []).append(x)
    over: list[dict[str, Any]] = []
    told: list[str] = []
    for key, on_board in carried.items():
        if (line := pledge_lines.get(key)) is None:
            continue
        quantity = sum((x.quantity for x in on_board), ZERO)
        elsewhere = allocated.get(key, quantity) - quantity
        remaining = max(line.quantity - elsewhere, ZERO)
        if quantity > remaining:
            over.append(
                {
                    "pledge_id": line.pledge_id,
                    "line_id": line.line_id,
                    "committed": text(line.quantity),
                    "allocated_elsewhere": text(elsewhere),
                    "remaining": text(remaining),
                    "carried": text(quantity),
                    "manifest_line_ids": [x.manifest_line_id for x in on_board],
                }
            )
            told.append(
                f"pledge line {line.pledge_id}/{line.line_id} ({line.item}) now commits"
                f" {text(line.quantity)} {line.unit}, other convoys hold {text(elsewhere)}, so"
                f" {text(remaining)} remain for this convoy, which carries {text(quantity)}"
            )
    if over:
        raise errors.ExceedsRemaining(
            f"convoy {state.convoy_id} carries more than its pledge lines commit:"
            f" {'; '.join(told)}; unload the difference before dispatch",
            extra={
                "entry_id": entry.entry_id,
                "manifest_line_ids": sorted(i for x in over for i in x["manifest_line_ids"]),
                "pledge_lines": over,
            },
        )


def _dispatch(
    state: Convoy,
    entry: FieldEntry,
    pledge_lines: Mapping[tuple[str, str], PledgeLine],
    allocated: Mapping[tuple[str, str], Decimal],
) -> dict[str, Any]:
    if state.status not in BEFORE_DISPATCH:
        raise errors.status_forbids(state, "it was dispatched already", entry_id=entry.entry_id)
    if not state.loaded:
        raise errors.EmptyConvoy(
            f"convoy {state.convoy_id} has nothing on its manifest: load pledge lines before"
            " dispatching it",
            extra={"entry_id": entry.entry_id},
        )
    withdrawn = sorted(
        x.manifest_line_id
        for x in state.loaded
        if (p := pledge_lines.get((x.pledge_id, x.line_id))) is not None and p.status == "withdrawn"
    )
    if withdrawn:
        raise errors.NotLoadable(
            f"the pledges behind manifest line(s) {', '.join(withdrawn)} were withdrawn since"
            " loading: unload them before dispatch",
            extra={"entry_id": entry.entry_id, "manifest_line_ids": withdrawn},
        )
    _over_commitment(state, entry, pledge_lines, allocated)
    last_loaded = max(x.loaded_at for x in state.loaded)
    if entry.occurred_at < last_loaded:
        raise errors.invalid(
            f"dispatch at {entry.occurred_at.isoformat()} is before the last loading at"
            f" {last_loaded.isoformat()}",
            name=f"entries[{entry.entry_id}].occurred_at",
            reason="before loading",
        )
    custody = entry.details.get("custody") or {"organisation_id": state.carrier_id}
    return {"custody": custody}  # what left, and its weight, are the convoy's state


def _incident(state: Convoy, entry: FieldEntry) -> None:
    d = entry.details
    if d["kind"] in LOSS_KINDS and state.delivery is not None:
        raise errors.wrong_status(
            state,
            f"the delivery of convoy {state.convoy_id} is confirmed: losses must be recorded"
            f" before it (entry {entry.entry_id})",
            entry_id=entry.entry_id,
        )
    lost = state.lost()
    named: dict[str, int] = {}
    for i, affected in enumerate(d.get("lines", ())):
        field = f"entries[{entry.entry_id}].lines.{i}"
        manifest_line_id = affected["manifest_line_id"]
        if (j := named.setdefault(manifest_line_id, i)) != i:
            raise errors.invalid(
                f"manifest line {manifest_line_id} is given twice in entry {entry.entry_id}"
                f" (lines.{j} and lines.{i}): give each affected line once, with its whole"
                " quantity",
                name=f"{field}.manifest_line_id",
                reason="given twice",
            )
        line = state.line(manifest_line_id)
        if line is None or line.state.value != "loaded":
            raise errors.invalid(
                f"manifest line {manifest_line_id} is not on convoy {state.convoy_id}",
                name=f"{field}.manifest_line_id",
                reason="unknown manifest line",
            )
        quantity = dec(affected["quantity"])
        # what the batch's earlier entries lost is in `state` (folded entry by entry)
        already = lost.get(line.manifest_line_id, ZERO) if d["kind"] in LOSS_KINDS else ZERO
        if already + quantity > line.quantity:
            raise errors.invalid(
                f"manifest line {line.manifest_line_id} ({line.item}) was loaded with"
                f" {text(line.quantity)} {line.unit}; {text(already)} already recorded lost +"
                f" {text(quantity)} = {text(already + quantity)} is more than was loaded",
                name=f"{field}.quantity",
                reason="more than loaded",
            )


def _arrival(state: Convoy, entry: FieldEntry) -> None:
    if state.arrived_at is not None:
        raise errors.wrong_status(
            state,
            f"convoy {state.convoy_id} arrived already, at {state.arrived_at.isoformat()}",
            entry_id=entry.entry_id,
        )


def _decide(
    state: Convoy,
    entry: FieldEntry,
    *,
    now: datetime,
    known_organisations: Collection[str],
    pledge_lines: Mapping[tuple[str, str], PledgeLine],
    allocated: Mapping[tuple[str, str], Decimal],
) -> tuple[NewEvent, ev.EntryPayload]:
    """The event recording the entry, and its payload."""
    _common(state, entry, now)
    for key, organisation in entry.organisations():
        if organisation not in known_organisations:
            raise errors.invalid(
                f"organisation {organisation} is not in the registry",
                name=f"entries[{entry.entry_id}].{key}.organisation_id",
                reason="unknown organisation",
            )
    details = dict(entry.details)
    if entry.kind == "dispatch":
        details.update(_dispatch(state, entry, pledge_lines, allocated))
    elif entry.kind == "incident":
        _incident(state, entry)
    elif entry.kind == "arrival":
        _arrival(state, entry)
    _after_the_end(state, entry)  # after the kinds' own refusals (a loss after delivery...)
    event_type = ev.ENTRY_EVENTS[entry.kind]
    data: ev.EntryPayload = ev.SCHEMAS[event_type].model_validate(  # type: ignore[assignment]
        {
            "convoy_id": state.convoy_id,
            "entry_id": entry.entry_id,
            "entry_sha256": entry.digest,
            **details,
        }
    )
    return ev.CODEC.new(data, occurred_at=entry.occurred_at), data


def _provisional(state: Convoy, event: NewEvent, now: datetime) -> RecordedEvent:
    """The event as it will be recorded, so that later entries of the batch see it (its
    stream is left unnamed: naming streams is the repository's, handlers/repositories.py)."""
    return RecordedEvent(
        event_id=event.event_id,
        stream_type=ev.STREAM_CONVOY,
        stream_id="",
        stream_version=state.version + 1,
        event_type=event.event_type,
        schema_version=event.schema_version,
        occurred_at=event.occurred_at or now,
        recorded_at=now,
        data=event.data,
        metadata=Metadata(),
    )


def _once_each(entries: Sequence[FieldEntry]) -> dict[int, int]:
    """The place of each entry that repeats an earlier place of the batch (the same id and
    content): the earlier place, by the later. ValidationFailed naming the later place's
    `entry_id` when an id is used twice with other content."""
    first: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for i, entry in enumerate(entries):
        j = first.setdefault(entry.entry_id, i)
        if j == i:
            continue
        if entries[j].as_sent != entry.as_sent:
            raise errors.invalid(
                f"entry id {entry.entry_id} is used twice in this request, with other content"
                f" (entries[{j}] and entries[{i}]): a new entry needs a new id",
                name=f"entries[{i}].entry_id",
                reason="duplicate",
            )
        repeats[i] = j
    return repeats


def record_entries(
    state: Convoy,
    entries: Sequence[FieldEntry],
    *,
    now: datetime,
    known_organisations: Collection[str] = (),
    pledge_lines: Mapping[tuple[str, str], PledgeLine] | None = None,
    allocated: Mapping[tuple[str, str], Decimal] | None = None,
    recorded: Mapping[str, Entry] | None = None,
) -> RoadDecision:
    """Decide a batch, all or nothing, taking the entries in the order they occurred.

    `recorded`: the entries of the convoy already recorded under the batch's ids, by id (the
    caller looks them up in the log; the state keeps no list of entries). `known_organisations`
    are the registered organisations among those the entries name; `pledge_lines` what
    pledges last said of the lines on board, `allocated` what every convoy holds of them (a
    dispatch is refused when the convoy carries more of a line than it still commits beyond
    the other convoys' share). An id used twice in the batch is one entry (_once_each):
    recorded once, counted once. Raises NotFound, EntryIdReused, ConvoyClosed, WrongStatus,
    EmptyConvoy, NotLoadable, ExceedsRemaining, ValidationFailed
    (future or pre-dispatch times, times after the delivery or, for what moves the convoy,
    after its arrival, unknown organisations or manifest lines, a line named twice in an
    incident, losses beyond what was loaded); the problem names the entry."""
    require_existing(state)
    repeats = _once_each(entries)
    order = sorted(
        (i for i in range(len(entries)) if i not in repeats), key=lambda i: entries[i].occurred_at
    )
    answers: dict[int, dict[str, Any]] = {}
    events: list[NewEvent] = []
    replayed = 0
    seen_by_id: Mapping[str, Entry] = recorded or {}  # before this batch: its ids are its own
    for i in order:
        entry = entries[i]
        seen = seen_by_id.get(entry.entry_id)
        if seen is not None:
            if not entry.same_as(seen.digest):
                raise errors.EntryIdReused(
                    f"entry {entry.entry_id} was recorded at {seen.recorded_at.isoformat()} with"
                    " other content: a new entry needs a new id",
                    extra={"entry_id": entry.entry_id, "event_id": seen.event_id},
                )
            answers[i] = seen.answer()
            replayed += 1
            continue
        event, payload = _decide(
            state,
            entry,
            now=now,
            known_organisations=known_organisations,
            pledge_lines=pledge_lines or {},
            allocated=allocated or {},
        )
        provisional = Event(_provisional(state, event, now), payload)
        state = evolve(state, provisional)  # later entries of the batch see it
        events.append(event)
        answers[i] = entry_of(provisional).answer()
    for i, j in repeats.items():
        answers[i] = answers[j]
    return RoadDecision(events, [answers[i] for i in range(len(entries))], replayed)
