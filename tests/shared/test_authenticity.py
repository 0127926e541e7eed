"""Which signatures a consumer checks of a fetch (shared/authenticity.py `verify`): as few as
the chain links and the lanes of the fetch allow, never trusting a header no verified
signature covers, and each event still its upstream's own."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
import rfc8785
from aiokafka import ConsumerRecord

from shared import authenticity, chain, keys, outbox
from shared.events import Metadata, RecordedEvent
from shared.incoming import Incoming, parse_record
from shared.signing import Signer
from tests.shared.kafka_helpers import relayed

pytestmark = pytest.mark.once  # pure Python

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
PARTITIONS = 4
REGISTRY = Signer.generate()
ATTACKER = Signer.generate()


class CountingRing(keys.KeyRing):
    """The keys pinned for the registry, counting the signatures checked."""

    checked = 0

    def verify(self, service: str, raw: str, signature: bytes, body: bytes) -> None:
        self.checked += 1
        super().verify(service, raw, signature, body)


def ring() -> CountingRing:
    found = CountingRing.pinned({"registry": [REGISTRY.public_key]})
    assert isinstance(found, CountingRing)
    return found


def organisation(position: int) -> RecordedEvent:
    at = NOW + timedelta(seconds=position)
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type="organisation",
        stream_id=f"organisation-town-{position}",
        stream_version=1,
        event_type="registry.organisation-registered",
        schema_version=1,
        occurred_at=at,
        recorded_at=at,
        data={"organisation_id": f"town-{position}", "name": f"Town {position}", "country": "UA"},
        metadata=Metadata(actor="admin", organisation="twinaid"),
        position=position,
    )


def key_change(position: int, old: Signer, new: Signer) -> RecordedEvent:
    return dataclasses.replace(
        organisation(position),
        stream_type="audit",
        stream_id="signing-key-registry",
        event_type=keys.KEY_CHANGED,
        data=old.announce_change(new, service="registry", at=NOW),
    )


def sealed(events: Sequence[RecordedEvent]) -> list[RecordedEvent]:
    out, previous = [], chain.GENESIS
    for event in events:
        assert event.position is not None
        event = dataclasses.replace(
            event, hash=chain.link(previous, event, position=event.position)
        )
        out.append(event)
        previous = event.hash or b""
    return out


def published(events: Sequence[RecordedEvent], signers: Sequence[Signer]) -> list[Incoming]:
    """The events as the registry's relay publishes them, read back as a consumer does."""
    records = relayed("registry", events, signers, partitions=PARTITIONS)
    return [parse_record(r, upstream="registry") for r in records]


def the_log(n: int) -> list[Incoming]:
    events = sealed([organisation(p) for p in range(1, n + 1)])
    return published(events, [REGISTRY] * n)


def by_partition(events: Sequence[Incoming], each: int) -> list[Incoming]:
    """A backlog fetch: the first `each` records of every partition, a partition's in order."""
    return [e for p in range(PARTITIONS) for e in [e for e in events if e.partition == p][:each]]


def test_a_fetch_of_consecutive_positions_is_shown_authentic_by_one_signature() -> None:
    log = the_log(40)
    assert len({e.partition for e in log[10:20]}) > 1, "the fetch spans partitions"
    checking = ring()
    assert authenticity.verify(checking, log[10:20]) == {}
    assert checking.checked == 1


def test_a_backlog_fetch_takes_at_most_one_signature_a_partition() -> None:
    fetch = by_partition(the_log(400), 25)
    checking = ring()
    assert authenticity.verify(checking, fetch) == {}
    assert 1 <= checking.checked <= PARTITIONS


def forged_after(last: Incoming, *, name: str, signer: Signer) -> Incoming:
    """An event at the position after `last`, well linked to it and following it in its lane,
    signed by `signer`."""
    assert last.chain_hash is not None and last.lane_previous is not None
    event = organisation(last.position + 1)
    event = dataclasses.replace(event, data={**event.data, "name": name})
    event = dataclasses.replace(
        event, hash=chain.link(last.chain_hash, event, position=last.position + 1)
    )
    headers, _ = outbox.headers_for(
        "registry",
        event,
        signer=signer,
        previous=last.chain_hash,
        lane=authenticity.lane(last.lane_previous, last.chain_hash),
    )
    value = rfc8785.dumps(event.data)
    record = ConsumerRecord(
        topic="registry.events",
        partition=last.partition or 0,
        offset=1000,
        timestamp=0,
        timestamp_type=0,
        key=event.stream_id.encode(),
        value=value,
        checksum=None,
        serialized_key_size=0,
        serialized_value_size=len(value),
        headers=headers,
    )
    return parse_record(record, upstream="registry")


def refused(signer: Signer) -> str:
    return f"key {signer.public_key} is neither pinned nor announced for registry"


def test_a_forgery_inside_a_fetch_is_named_and_the_real_events_below_it_pass() -> None:
    log = the_log(12)
    fetch = [*log[4:], forged_after(log[-1], name="Atlantis", signer=ATTACKER)]
    assert authenticity.verify(ring(), fetch) == {len(fetch) - 1: refused(ATTACKER)}


def test_an_event_that_only_a_forgery_commits_to_is_checked_on_its_own() -> None:
    log = the_log(6)
    fake = forged_after(log[-1], name="Atlantis", signer=ATTACKER)
    checking = ring()
    assert authenticity.verify(checking, [log[-1], fake]) == {1: refused(ATTACKER)}
    assert checking.checked == 2, "the forgery's signature, then the real event's own"


def test_a_chain_hash_shown_by_the_next_position_vouches_for_no_lane_header() -> None:
    """An event shown authentic only through the previous hash of the event after it has its
    body shown, not its `ce_laneprev` header: a lane that header names shows nothing."""
    log = the_log(8)
    top, below = log[-1], log[-2]
    intruder = dataclasses.replace(organisation(3), event_id=uuid.uuid4())
    intruder = dataclasses.replace(intruder, hash=chain.link(chain.GENESIS, intruder, position=3))
    [fake] = published([intruder], [ATTACKER])
    assert fake.lane_previous is not None and fake.chain_hash is not None
    # the real event below the top names the intruder's lane as the one before it
    tampered = dataclasses.replace(
        below, lane_previous=authenticity.lane(fake.lane_previous, fake.chain_hash)
    )
    failed = authenticity.verify(ring(), [fake, tampered, top])
    assert failed == {0: refused(ATTACKER)}


def test_an_unsigned_copy_of_a_real_event_is_refused_even_inside_a_signed_run() -> None:
    log = the_log(10)
    unsigned = dataclasses.replace(log[4], signature=None)
    failed = authenticity.verify(ring(), [*log[:4], unsigned, *log[5:]])
    assert failed == {4: "not signed"}


def test_events_signed_by_a_key_announced_earlier_in_the_fetch_are_authentic() -> None:
    new = Signer.generate()
    events = sealed(
        [
            *(organisation(p) for p in range(1, 6)),
            key_change(6, REGISTRY, new),
            *(organisation(p) for p in range(7, 16)),
        ]
    )
    log = published(events, [REGISTRY] * 6 + [new] * 9)
    checking = ring()
    assert authenticity.verify(checking, log) == {}
    assert checking.trusts("registry", new.public_key)
    # and by a key nobody announced: every event it signed is named
    stranger = Signer.generate()
    log = published(events, [REGISTRY] * 6 + [stranger] * 9)
    failed = authenticity.verify(ring(), log)
    assert sorted(failed) == list(range(6, 15))
    assert failed[14] == refused(stranger)
