"""Typed events: one codec turns stored and consumed payloads into the event type's model.

Each event type has one CURRENT model, a pydantic model declaring `EVENT_TYPE` (its stable
dotted name) and `SCHEMA_VERSION` (1 unless given). Events are written with the current
version; an older version stays in the log as it was written (the chain covers the stored
form) and is upcast when read: `upcasters[(type, n)]` turns version n's data into version
n + 1's, one step at a time, and the current model validates the result. Adding a version:
bump the model's SCHEMA_VERSION, change its fields, and register the upcaster from the
previous version (STYLE.md rule 13; docs/ARCHITECTURE.md). A version no upcaster can turn
into the current one (a person in clear that only the write path can seal) decodes into a
model of its own, given in `previous`, and readers match both.

Nothing else indexes raw payloads: readers match on the payload's type. Pure: no framework
or driver imports.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, cast, overload

from pydantic import BaseModel, ValidationError

from shared.errors import TwinaidError
from shared.events import Metadata, NewEvent, RecordedEvent

__all__ = ["Event", "EventCodec", "UndecodableEvent", "Upcaster", "event_type_of", "unchanged"]

P = TypeVar("P", bound=BaseModel)
V = TypeVar("V")
# the data of version n of an event type -> the data of version n + 1 (it may change its
# argument: the codec hands it a copy)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
NO_UPCASTERS: Mapping[tuple[str, int], Upcaster] = {}
NO_PREVIOUS: Mapping[tuple[str, int], type[BaseModel]] = {}


def unchanged(data: dict[str, Any]) -> dict[str, Any]:
    """The upcaster of a version whose data a reader's own model takes as it is: what changed
    in the next version is what that reader does not read."""
    return data


class _Stored(Generic[V]):
    """An attribute of an Event that is its stored envelope's (the RecordedEvent's of the same
    name), read through: the decoded event never holds a copy that could differ."""

    def __set_name__(self, owner: type[Any], name: str) -> None:
        if name not in RecordedEvent.__dataclass_fields__:
            raise TypeError(f"a stored event has no {name}")
        self.name = name

    @overload
    def __get__(self, event: None, owner: type[Any] | None = None) -> _Stored[V]: ...
    @overload
    def __get__(self, event: Event[Any], owner: type[Any] | None = None) -> V: ...
    def __get__(self, event: Event[Any] | None, owner: type[Any] | None = None) -> V | _Stored[V]:
        if event is None:  # on the class (introspection, hasattr): the descriptor itself
            return self
        return cast(V, getattr(event.recorded, self.name))


@dataclass(frozen=True, slots=True)
class Event(Generic[P]):
    """A stored or consumed event, decoded: the stored envelope, untouched (chain hashes,
    audit, JSON out), and the payload as the model of its type's CURRENT version."""

    recorded: RecordedEvent
    payload: P

    event_id = _Stored[uuid.UUID]()
    event_type = _Stored[str]()
    stream_type = _Stored[str]()
    stream_id = _Stored[str]()
    stream_version = _Stored[int]()
    # the version the event was stored with (the payload is the current version's)
    schema_version = _Stored[int]()
    occurred_at = _Stored[datetime]()
    recorded_at = _Stored[datetime]()
    metadata = _Stored[Metadata]()
    position = _Stored[int | None]()


class UndecodableEvent(TwinaidError):
    """An event the codec cannot turn into its model: an unknown type, a version without an
    upcaster path (or newer than the model), or data its model refuses. Stored data, not the
    caller's input: a request that meets one is answered 500 naming the event (the caller
    did nothing wrong; an operator must look at the row), and a consumer retries it and then
    parks it as a dead letter."""

    status = 500
    type_slug = "undecodable-event"
    title = "A stored event cannot be read"

    def __init__(
        self,
        *,
        event_type: str,
        schema_version: int,
        reason: str,
        event_id: uuid.UUID | None = None,
    ) -> None:
        named = f"{event_type} v{schema_version}"
        if event_id is not None:
            named = f"event {event_id} ({named})"
        super().__init__(
            f"{named} cannot be decoded: {reason}",
            extra={
                "event_id": None if event_id is None else str(event_id),
                "event_type": event_type,
                "schema_version": schema_version,
            },
        )
        self.event_id = event_id
        self.event_type = event_type
        self.schema_version = schema_version
        self.reason = reason


def event_type_of(model: type[BaseModel]) -> tuple[str, int]:
    """A model's (EVENT_TYPE, SCHEMA_VERSION); TypeError when it declares no EVENT_TYPE."""
    event_type = getattr(model, "EVENT_TYPE", None)
    if not isinstance(event_type, str) or not event_type:
        raise TypeError(f"{model.__name__} declares no EVENT_TYPE")
    version = getattr(model, "SCHEMA_VERSION", 1)
    if not isinstance(version, int) or version < 1:
        raise TypeError(f"{model.__name__}.SCHEMA_VERSION must be a positive integer")
    return event_type, version


class EventCodec:
    """Encodes event models as NewEvents and decodes stored or consumed events into the
    current model of their type, upcasting older versions."""

    def __init__(
        self,
        models: Iterable[type[BaseModel]],
        *,
        upcasters: Mapping[tuple[str, int], Upcaster] = NO_UPCASTERS,
        previous: Mapping[tuple[str, int], type[BaseModel]] = NO_PREVIOUS,
    ) -> None:
        """Each model is the CURRENT model of its type. `previous[(type, n)]` is the model
        version n of a type decodes into as it is, when no upcaster can make the current
        version of it (e.g. a person in clear that only the write path can seal): readers
        then match both models. TypeError for two models of one type, or an upcaster or
        previous model of a type the codec does not know, of a version not below the
        current, or both for one version."""
        self._models: dict[str, type[BaseModel]] = {}
        self._versions: dict[str, int] = {}
        for model in models:
            event_type, version = event_type_of(model)
            if event_type in self._models:
                raise TypeError(
                    f"two models of {event_type}: {model.__name__} and"
                    f" {self._models[event_type].__name__}"
                )
            self._models[event_type] = model
            self._versions[event_type] = version
        for what, keys in (("an upcaster", upcasters), ("a previous model", previous)):
            for event_type, version in keys:
                if event_type not in self._versions:
                    raise TypeError(f"{what} of {event_type}, a type the codec does not know")
                if not 1 <= version < self._versions[event_type]:
                    raise TypeError(
                        f"{what} of {event_type} version {version}: the current version is"
                        f" {self._versions[event_type]}"
                    )
        if both := set(upcasters) & set(previous):
            raise TypeError(f"both an upcaster and a previous model for {sorted(both)}")
        self._upcasters = dict(upcasters)
        self._previous = dict(previous)

    def event_types(self) -> list[str]:
        return sorted(self._models)

    def knows(self, event_type: str) -> bool:
        return event_type in self._models

    def version(self, event_type: str) -> int:
        """The current version of a type (LookupError for a type the codec does not know)."""
        try:
            return self._versions[event_type]
        except KeyError:
            raise LookupError(f"the codec does not know {event_type}") from None

    def model(self, event_type: str) -> type[BaseModel]:
        """The current model of a type (LookupError for a type the codec does not know)."""
        try:
            return self._models[event_type]
        except KeyError:
            raise LookupError(f"the codec does not know {event_type}") from None

    def new(
        self,
        payload: BaseModel,
        *,
        occurred_at: datetime | None = None,
        event_id: uuid.UUID | None = None,
    ) -> NewEvent:
        """The payload as an event to append, with its type's current version. The payload's
        model is the codec's model of its type, or one declaring the same type and current
        version whose data the codec's model decodes (a service may read with a wider model
        than it writes with); TypeError otherwise: what is written always decodes."""
        event_type, version = event_type_of(type(payload))
        model = self._models.get(event_type)
        data = payload.model_dump(mode="json")
        if model is not type(payload):
            if model is None or version != self._versions[event_type]:
                raise TypeError(
                    f"{type(payload).__name__} is not a model of the current version of"
                    f" {event_type}"
                )
            try:
                model.model_validate(data)
            except ValidationError as exc:
                raise TypeError(
                    f"{type(payload).__name__} writes what {model.__name__} cannot read: {exc}"
                ) from exc
        return NewEvent(
            event_type=event_type,
            data=data,
            occurred_at=occurred_at,
            schema_version=self._versions[event_type],
            event_id=event_id or uuid.uuid4(),
        )

    def decode(self, event: RecordedEvent) -> Event[Any]:
        """The event with its payload as the current model; UndecodableEvent naming it."""
        payload = self._decode(
            event.event_type, event.schema_version, event.data, event_id=event.event_id
        )
        return Event(event, payload)

    def decode_data(
        self,
        event_type: str,
        schema_version: int,
        data: Mapping[str, Any],
        *,
        newer: bool = False,
    ) -> BaseModel:
        """A payload alone (a consumed message's), as the current model of its type. `newer`:
        a version above the current one is read with the current model (a tolerant reader
        of an upstream that moved on first: what it reads must still validate)."""
        return self._decode(event_type, schema_version, data, event_id=None, newer=newer)

    def payload(self, event: RecordedEvent, model: type[P]) -> P:
        """The stored event's payload, known to be a `model` (for a reader bound to one type,
        e.g. a projection's handler); TypeError when it decodes to another model (a reader
        bound to the wrong type: a bug), UndecodableEvent as `decode`."""
        found = self.decode(event).payload
        if not isinstance(found, model):
            raise TypeError(f"{event.event_type} decodes to {type(found).__name__}, not {model}")
        return found

    def decode_all(self, events: Iterable[RecordedEvent]) -> list[Event[Any]]:
        """Every event decoded, in order; the first that cannot be raises UndecodableEvent."""
        return [self.decode(e) for e in events]

    def _decode(
        self,
        event_type: str,
        schema_version: int,
        data: Mapping[str, Any],
        *,
        event_id: uuid.UUID | None,
        newer: bool = False,
    ) -> BaseModel:
        def undecodable(reason: str) -> UndecodableEvent:
            return UndecodableEvent(
                event_type=event_type,
                schema_version=schema_version,
                reason=reason,
                event_id=event_id,
            )

        model = self._models.get(event_type)
        if model is None:
            raise undecodable("the type is unknown here")
        current = self._versions[event_type]
        if schema_version > current and not newer:
            raise undecodable(f"the newest version known here is {current}")
        if schema_version < 1:
            raise undecodable("versions start at 1")
        if not isinstance(data, Mapping):
            raise undecodable("the data is not a JSON object")
        raw: dict[str, Any] = data if isinstance(data, dict) else dict(data)
        model = self._previous.get((event_type, schema_version), model)
        if schema_version < current and (event_type, schema_version) not in self._previous:
            raw = copy.deepcopy(raw)  # the stored form stays untouched
            for version in range(schema_version, current):
                upcast = self._upcasters.get((event_type, version))
                if upcast is None:
                    raise undecodable(f"no upcaster from version {version} to {version + 1}")
                try:
                    raw = upcast(raw)
                except (KeyError, TypeError, ValueError) as exc:
                    raise undecodable(f"upcasting from version {version} failed: {exc!r}") from exc
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'data'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise undecodable(problems) from exc
