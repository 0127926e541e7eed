"""The event codec (shared/codec.py): models out as stored events and back, older stored
versions upcast step by step to the current model, and anything it cannot decode refused
with an error naming the event."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from pydantic import BaseModel, ConfigDict, Field

from shared.codec import Event, EventCodec, UndecodableEvent
from shared.consumed import Tolerant
from shared.errors import ValidationFailed
from shared.events import Metadata, RecordedEvent

pytestmark = pytest.mark.once  # pure Python

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


class Counted(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.counted"

    n: int = Field(ge=0)


class Weighed(BaseModel):
    """Version 3: the weight in grams with its unit explicit. Version 1 held `kilos`;
    version 2 renamed it `weight_kg`."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.weighed"
    SCHEMA_VERSION: ClassVar[int] = 3

    item: str = Field(max_length=20)
    grams: int
    unit: str = "g"


def v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    data["weight_kg"] = data.pop("kilos")
    return data


def v2_to_v3(data: dict[str, Any]) -> dict[str, Any]:
    data["grams"] = round(float(data.pop("weight_kg")) * 1000)
    return data


CODEC = EventCodec(
    [Counted, Weighed],
    upcasters={("test.weighed", 1): v1_to_v2, ("test.weighed", 2): v2_to_v3},
)


def stored(event_type: str, version: int, data: dict[str, Any]) -> RecordedEvent:
    return RecordedEvent(
        event_id=uuid.uuid4(),
        stream_type="scale",
        stream_id="scale-1",
        stream_version=1,
        event_type=event_type,
        schema_version=version,
        occurred_at=NOW,
        recorded_at=NOW,
        data=data,
        metadata=Metadata(actor="k1", organisation="lille"),
        position=7,
    )


def test_a_model_encodes_with_its_type_and_current_version_and_decodes_back() -> None:
    payload = Weighed(item="flour", grams=1500)
    new = CODEC.new(payload, occurred_at=NOW)
    assert (new.event_type, new.schema_version, new.occurred_at) == ("test.weighed", 3, NOW)
    assert new.data == {"item": "flour", "grams": 1500, "unit": "g"}
    event = CODEC.decode(stored(new.event_type, new.schema_version, dict(new.data)))
    assert isinstance(event, Event) and event.payload == payload
    assert (event.event_type, event.schema_version, event.stream_id, event.position) == (
        "test.weighed",
        3,
        "scale-1",
        7,
    )
    assert event.metadata.organisation == "lille" and event.occurred_at == NOW
    assert CODEC.new(Counted(n=2)).schema_version == 1  # SCHEMA_VERSION defaults to 1
    given = uuid.uuid4()
    assert CODEC.new(Counted(n=2), event_id=given).event_id == given


def test_stored_old_versions_upcast_through_each_step_to_the_current_model() -> None:
    v1 = stored("test.weighed", 1, {"item": "rice", "kilos": "2.5"})
    v2 = stored("test.weighed", 2, {"item": "rice", "weight_kg": 2.5})
    current = Weighed(item="rice", grams=2500)
    assert CODEC.decode(v1).payload == CODEC.decode(v2).payload == current
    # the stored form stays as written (the chain covers it), and says which version it was
    assert v1.data == {"item": "rice", "kilos": "2.5"}
    assert CODEC.decode(v1).schema_version == 1 and CODEC.decode(v1).recorded is v1
    assert CODEC.decode_data("test.weighed", 1, {"item": "rice", "kilos": 2.5}) == current


def test_decode_all_decodes_a_mixed_log_in_order() -> None:
    log = [
        stored("test.counted", 1, {"n": 1}),
        stored("test.weighed", 1, {"item": "oil", "kilos": 1}),
        stored("test.weighed", 3, {"item": "oil", "grams": 900, "unit": "g"}),
    ]
    assert [e.payload for e in CODEC.decode_all(log)] == [
        Counted(n=1),
        Weighed(item="oil", grams=1000),
        Weighed(item="oil", grams=900),
    ]


def test_invalid_stored_data_is_undecodable_naming_the_event() -> None:
    bad = stored("test.counted", 1, {"n": -1})
    with pytest.raises(UndecodableEvent) as caught:
        CODEC.decode(bad)
    error = caught.value
    # stored data, not the caller's input: never a 4xx blaming the request
    assert not isinstance(error, ValidationFailed) and error.status == 500
    assert str(bad.event_id) in error.detail and "test.counted v1" in error.detail
    assert "n:" in error.detail  # which field the model refused
    assert error.problem()["event_id"] == str(bad.event_id)
    assert (error.event_type, error.schema_version) == ("test.counted", 1)
    # an extra field the model forbids, a failing upcaster, a non-object
    with pytest.raises(UndecodableEvent, match="m: Extra inputs"):
        CODEC.decode(stored("test.counted", 1, {"n": 1, "m": 2}))
    with pytest.raises(UndecodableEvent, match="upcasting from version 1"):
        CODEC.decode(stored("test.weighed", 1, {"item": "rice"}))
    with pytest.raises(UndecodableEvent, match="not a JSON object"):
        CODEC.decode_data("test.counted", 1, [1, 2])  # type: ignore[arg-type]


def test_unknown_types_and_versions_are_undecodable() -> None:
    with pytest.raises(UndecodableEvent, match="unknown"):
        CODEC.decode(stored("test.nobody-knows", 1, {}))
    with pytest.raises(UndecodableEvent, match="newest version known here is 3"):
        CODEC.decode(stored("test.weighed", 4, {"item": "x", "grams": 1}))
    with pytest.raises(UndecodableEvent, match="versions start at 1"):
        CODEC.decode_data("test.counted", 0, {"n": 1})
    # a gap in the upcaster chain
    gap = EventCodec([Weighed], upcasters={("test.weighed", 2): v2_to_v3})
    with pytest.raises(UndecodableEvent, match="no upcaster from version 1 to 2"):
        gap.decode(stored("test.weighed", 1, {"item": "x", "kilos": 1}))
    with pytest.raises(LookupError):
        CODEC.version("test.nobody-knows")
    with pytest.raises(LookupError):
        CODEC.model("test.nobody-knows")


def test_the_codec_knows_its_types_and_refuses_mistakes_when_built_or_writing() -> None:
    assert CODEC.knows("test.weighed") and not CODEC.knows("test.other")
    assert CODEC.version("test.weighed") == 3 and CODEC.model("test.counted") is Counted
    assert CODEC.event_types() == ["test.counted", "test.weighed"]

    class Untyped(BaseModel):
        n: int

    class CountedAgain(BaseModel):
        EVENT_TYPE: ClassVar[str] = "test.counted"

    with pytest.raises(TypeError, match="EVENT_TYPE"):
        EventCodec([Untyped])
    with pytest.raises(TypeError, match="two models"):
        EventCodec([Counted, CountedAgain])
    with pytest.raises(TypeError, match="does not know"):
        EventCodec([Counted], upcasters={("test.weighed", 1): v1_to_v2})
    with pytest.raises(TypeError, match="current version is 1"):
        EventCodec([Counted], upcasters={("test.counted", 1): v1_to_v2})
    # writing: only the codec's current model of a type, or one whose data it reads
    with pytest.raises(TypeError, match="CountedAgain writes what Counted cannot read"):
        CODEC.new(CountedAgain())
    with pytest.raises(TypeError):
        CODEC.new(Untyped(n=1))


class Signed(BaseModel):
    """Version 2 seals the signer, which no upcaster can do; version 1 decodes as SignedV1."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.signed"
    SCHEMA_VERSION: ClassVar[int] = 2

    sealed_signer: str


class SignedV1(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    EVENT_TYPE: ClassVar[str] = "test.signed"

    signer: str


class SignedWritten(BaseModel):
    """What the write path builds: the same type and current version, a model of its own."""

    EVENT_TYPE: ClassVar[str] = "test.signed"
    SCHEMA_VERSION: ClassVar[int] = 2

    sealed_signer: str


def test_a_version_no_upcaster_can_reach_decodes_into_its_own_previous_model() -> None:
    codec = EventCodec([Signed], previous={("test.signed", 1): SignedV1})
    assert codec.decode(stored("test.signed", 1, {"signer": "Olena"})).payload == SignedV1(
        signer="Olena"
    )
    assert codec.decode(stored("test.signed", 2, {"sealed_signer": "b64"})).payload == Signed(
        sealed_signer="b64"
    )
    with pytest.raises(UndecodableEvent, match="signer: Field required"):
        codec.decode(stored("test.signed", 1, {"sealed_signer": "b64"}))
    with pytest.raises(TypeError, match="both an upcaster and a previous model"):
        EventCodec(
            [Signed],
            upcasters={("test.signed", 1): v1_to_v2},
            previous={("test.signed", 1): SignedV1},
        )
    with pytest.raises(TypeError, match=r"a previous model of test\.signed version 2"):
        EventCodec([Signed], previous={("test.signed", 2): SignedV1})
    # written with another model of the same type and current version; never an old version
    new = codec.new(SignedWritten(sealed_signer="b64"))
    assert (new.event_type, new.schema_version) == ("test.signed", 2)
    with pytest.raises(TypeError, match=r"not a model of the current version of test\.signed"):
        codec.new(SignedV1(signer="Olena"))


def test_a_reader_bound_to_one_type_gets_its_payload_typed() -> None:
    weighed = stored("test.weighed", 1, {"item": "rice", "kilos": 2})
    assert CODEC.payload(weighed, Weighed) == Weighed(item="rice", grams=2000)
    with pytest.raises(TypeError, match=r"test\.weighed decodes to Weighed, not"):
        CODEC.payload(weighed, Counted)
    with pytest.raises(UndecodableEvent):
        CODEC.payload(stored("test.counted", 1, {"n": "many"}), Counted)


class Seen(Tolerant):
    """A consumer's model of an upstream's event: what it reads, extra fields ignored."""

    EVENT_TYPE: ClassVar[str] = "test.seen"
    SCHEMA_VERSION: ClassVar[int] = 2

    who: str = Field(max_length=20)


def test_a_consumer_reads_an_upstream_s_newer_version_with_its_model_if_it_validates() -> None:
    consumer = EventCodec([Seen], upcasters={("test.seen", 1): lambda d: d})
    # the upstream moved to version 3 (a field added) before this consumer was upgraded
    newer = {"who": "bucha", "since": "2026-12-01"}
    assert consumer.decode_data("test.seen", 3, newer, newer=True) == Seen(who="bucha")
    with pytest.raises(UndecodableEvent, match="newest version known here is 2"):
        consumer.decode_data("test.seen", 3, newer)  # its own log: a version it cannot know
    with pytest.raises(UndecodableEvent, match="who: Field required"):
        consumer.decode_data("test.seen", 3, {"whom": "bucha"}, newer=True)
    with pytest.raises(UndecodableEvent, match="who: String should have at most 20"):
        consumer.decode_data("test.seen", 3, {"who": "x" * 21}, newer=True)


def test_an_events_stored_attributes_read_through_and_are_descriptors_on_the_class() -> None:
    """Introspection (hasattr on the class) sees the attributes; an instance reads its stored
    envelope's values."""
    assert hasattr(Event, "event_type") and hasattr(Event, "stream_version")
