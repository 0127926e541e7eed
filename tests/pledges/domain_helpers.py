"""Building domain states from decisions, without a database."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from services.pledges import domain
from services.pledges import events as ev
from services.pledges.domain.quantities import Unit
from shared.events import Metadata, NewEvent, RecordedEvent

NOW = datetime(2023, 2, 20, 12, 0, tzinfo=UTC)
EARLIER = datetime(2023, 2, 1, tzinfo=UTC)


def recorded(
    events: Sequence[NewEvent], *, after_version: int = 0, correlation_id: str | None = None
) -> list[RecordedEvent]:
    return [
        RecordedEvent(
            event_id=uuid.uuid4(),
            stream_type="test",
            stream_id="test-1",
            stream_version=after_version + i,
            event_type=e.event_type,
            schema_version=e.schema_version,
            occurred_at=e.occurred_at or NOW,
            recorded_at=NOW,
            data=e.data,
            metadata=Metadata(correlation_id=correlation_id),
        )
        for i, e in enumerate(events, start=1)
    ]


def after_need(state: domain.Need, events: Sequence[NewEvent]) -> domain.Need:
    for event in recorded(events, after_version=state.version, correlation_id="need-corr"):
        state = domain.evolve_need(state, ev.CODEC.decode(event))
    return state


def after_pledge(state: domain.Pledge, events: Sequence[NewEvent]) -> domain.Pledge:
    for event in recorded(events, after_version=state.version, correlation_id="need-corr"):
        state = domain.evolve_pledge(state, ev.CODEC.decode(event))
    return state


def item_need(need_id: str = "kharkiv-generators", **fields: Any) -> domain.Need:
    command = domain.PostNeed(
        need_id=need_id,
        recipient_id=fields.pop("recipient_id", "kharkiv"),
        kind=domain.NeedKind.ITEM,
        category=fields.pop("category", domain.Category.GENERATORS),
        description="Generators for essential infrastructure",
        occurred_at=EARLIER,
        quantity=fields.pop("quantity", Decimal(100)),
        unit=fields.pop("unit", Unit.PIECES),
        **fields,
    )
    state = domain.Need(need_id)
    return after_need(state, domain.post_need(state, command, now=NOW, acting_for=None))


def money_need(need_id: str = "lille-convoy", **fields: Any) -> domain.Need:
    command = domain.PostNeed(
        need_id=need_id,
        recipient_id=fields.pop("recipient_id", "lille"),
        kind=domain.NeedKind.MONEY,
        category=domain.Category.MEDICINES,
        description="The other half of the second convoy",
        occurred_at=EARLIER,
        amount=fields.pop("amount", 10_000_000),
        currency=fields.pop("currency", "EUR"),
        **fields,
    )
    state = domain.Need(need_id)
    return after_need(state, domain.post_need(state, command, now=NOW, acting_for=None))


def in_kind(line_id: str = "generators", **fields: Any) -> domain.LineSpec:
    values: dict[str, Any] = {
        "item": "Medium-sized generator",
        "category": "generators",
        "quantity": Decimal(50),
        "unit": Unit.PIECES,
        **fields,
    }
    return domain.LineSpec(line_id=line_id, kind=domain.LineKind.IN_KIND, **values)


def money(line_id: str = "funds", **fields: Any) -> domain.LineSpec:
    values: dict[str, Any] = {
        "item": "Second convoy",
        "category": "medicines",
        "amount": 5_000_000,
        "currency": "EUR",
        **fields,
    }
    return domain.LineSpec(line_id=line_id, kind=domain.LineKind.MONEY, **values)


def make(
    *lines: domain.LineSpec,
    donor: str = "lille",
    recipient: str = "kharkiv",
    needs: dict[str, domain.Need] | None = None,
    commit: bool = False,
    acting_for: str | None = "lille",
    partnership: domain.PartnershipRef | None = None,
    partnership_id: str | None = None,
) -> list[NewEvent]:
    command = domain.MakePledge(
        pledge_id="p1",
        donor_id=donor,
        recipient_id=recipient,
        lines=lines or (in_kind(),),
        occurred_at=EARLIER,
        partnership_id=partnership_id,
        commit=commit,
    )
    return domain.make_pledge(
        domain.Pledge("p1"),
        command,
        now=NOW,
        acting_for=acting_for,
        needs=needs or {},
        partnership=partnership,
    )


def pledge(*lines: domain.LineSpec, commit: bool = True, **kw: Any) -> domain.Pledge:
    return after_pledge(domain.Pledge("p1"), make(*lines, commit=commit, **kw))


def delivered(
    manifest_line_id: str = "m1",
    *,
    line_id: str = "generators",
    received: str = "20",
    unit: str = "pieces",
    convoy_id: str = "convoy-1",
    damaged: str = "0",
    short: str = "0",
    lost: str = "0",
    loaded: str | None = None,
) -> domain.DeliveredLine:
    q = Decimal
    total = q(received) + q(damaged) + q(short) + q(lost)
    return domain.DeliveredLine(
        convoy_id=convoy_id,
        manifest_line_id=manifest_line_id,
        delivery_event_id=str(uuid.uuid4()),
        line_id=line_id,
        unit=unit,
        loaded=q(loaded) if loaded is not None else total,
        received=q(received),
        damaged=q(damaged),
        short=q(short),
        lost=q(lost),
    )


def data(events: Sequence[NewEvent], event_type: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in events if e.event_type == event_type]
