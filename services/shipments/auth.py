"""Who may do what with a convoy, and what each reader sees of it.

- Plan, load, unload, cancel: the logistics role of the origin or of the carrier.
- Road entries: the carrier (member or logistics role), or the logistics role of the origin or
  the recipient.
- Confirm delivery: the recipient (member or logistics role).
- Close: the origin or the recipient (member or logistics), or the carrier's logistics role.
- Read: the origin, recipient, carrier and the donors of the lines on board; auditors read all.
- Drivers and other named people (persons holding the goods, who confirmed the delivery):
  only the carrier, the recipient and auditors; they are sealed in the log and the read
  models (services/shipments/privacy.py) and opened for them (`revealed`). Each is recorded
  by the organisation whose key typed them (`recorder`), which answers access and erasure
  requests for them; a registry administrator's writes record them as the carrier's (the
  receiver: the recipient's).
- Delivered, damaged, short, lost and in-transit quantities and discrepancies: the sender, the
  recipient and the carrier for every line; a donor for its own lines (what was loaded is on
  the manifest for every reader).

One function, seen_by, cuts every view of a convoy to this: the convoy, as of an instant, its
timeline, the live stream and the lists. The raw event feed is for auditors and services only
(shared/routes.py).

Registry administrators (platform operators) may act for any organisation, as in the registry,
e.g. to record what a team reported by phone; every event names the key that wrote it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg

from services.shipments.domain import Convoy
from shared import privacy
from shared.auth import Principal, Role
from shared.errors import Forbidden

OPERATOR = Role.REGISTRY_ADMIN
WITHHELD = "(withheld)"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Parties:
    origin_id: str
    destination_id: str
    carrier_id: str
    donors: frozenset[str] = frozenset()

    @property
    def involved(self) -> frozenset[str]:
        return frozenset({self.origin_id, self.destination_id, self.carrier_id}) | self.donors


def reads_everything(caller: Principal) -> bool:
    return caller.has(Role.AUDITOR, OPERATOR)


def visible_to(caller: Principal) -> str | None:
    """The organisation whose convoys a list is limited to; None for those who read all."""
    return None if reads_everything(caller) else caller.organisation


def require_read(caller: Principal, parties: Parties, convoy_id: str) -> None:
    if reads_everything(caller) or caller.organisation in parties.involved:
        return
    raise Forbidden(
        f"{caller.organisation} is neither origin, recipient, carrier nor donor of convoy"
        f" {convoy_id}"
    )


def _acts(caller: Principal, organisations: Collection[str], *roles: Role) -> bool:
    return caller.organisation in organisations and caller.has(*roles)


def _require(allowed: bool, message: str) -> None:
    if not allowed:
        raise Forbidden(message)


def require_planner(caller: Principal, *, origin_id: str, carrier_id: str) -> None:
    _require(
        caller.has(OPERATOR) or _acts(caller, (origin_id, carrier_id), Role.LOGISTICS),
        "planning and loading a convoy takes the logistics role of its origin or its carrier",
    )


def require_planning(caller: Principal, parties: Parties) -> None:
    """require_planner for an existing convoy: loading, unloading, cancelling."""
    require_planner(caller, origin_id=parties.origin_id, carrier_id=parties.carrier_id)


def parties(convoy: Convoy) -> Parties:
    """The organisations a convoy involves, as every rule of this module takes them."""
    return Parties(convoy.origin_id, convoy.destination_id, convoy.carrier_id, convoy.donors)


def require_road_writer(caller: Principal, parties: Parties) -> None:
    _require(
        caller.has(OPERATOR)
        or _acts(caller, (parties.carrier_id,), Role.MEMBER, Role.LOGISTICS)
        or _acts(caller, (parties.origin_id, parties.destination_id), Role.LOGISTICS),
        "road events are recorded by the carrier or the logistics role of the origin or the"
        " recipient",
    )


def require_recipient(caller: Principal, parties: Parties) -> None:
    _require(
        caller.has(OPERATOR)
        or _acts(caller, (parties.destination_id,), Role.MEMBER, Role.LOGISTICS),
        f"only the recipient ({parties.destination_id}) confirms the delivery",
    )


def require_closer(caller: Principal, parties: Parties) -> None:
    _require(
        caller.has(OPERATOR)
        or _acts(caller, (parties.origin_id, parties.destination_id), Role.MEMBER, Role.LOGISTICS)
        or _acts(caller, (parties.carrier_id,), Role.LOGISTICS),
        "a convoy is closed by its origin, its recipient or its carrier's logistics role",
    )


def recorder(organisation: str | None, writers: Collection[str], *, default: str) -> str:
    """The organisation recording the people a write names (services/shipments/privacy.py):
    the writing key's `organisation`, which typed them and answers access and erasure
    requests for them; for a registry administrator acting for another organisation (not one
    of `writers`, the organisations that may make this write), `default`: the carrier for
    drivers and custody persons, the recipient for who confirmed the delivery."""
    return organisation if organisation is not None and organisation in writers else default


def road_recorder(organisation: str | None, parties: Parties) -> str:
    """Who records the persons of road entries an `organisation`'s key writes
    (require_road_writer)."""
    writers = (parties.carrier_id, parties.origin_id, parties.destination_id)
    return recorder(organisation, writers, default=parties.carrier_id)


def sees_personal_data(caller: Principal, parties: Parties) -> bool:
    return reads_everything(caller) or caller.organisation in (
        parties.carrier_id,
        parties.destination_id,
    )


def sees_every_line(caller: Principal, parties: Parties) -> bool:
    return reads_everything(caller) or caller.organisation in (
        parties.origin_id,
        parties.destination_id,
        parties.carrier_id,
    )


# a line's figures once it left: what arrived (and how), what was lost, what is still on the road
LINE_FIGURES = ("delivered", "received", "damaged", "short", "lost", "in_transit")


def line_donors(document: Mapping[str, Any]) -> dict[str, str]:
    """manifest line id -> donor, from a convoy document: event data that lists lines (a
    delivery, an incident) names the manifest line, not its donor."""
    return {line["manifest_line_id"]: line["donor_id"] for line in document.get("manifest", ())}


def _person(person: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """A person (sealed, or in clear as version 1 events hold them) as one who may not see
    personal data sees them: the clear fields (a role), the name withheld, no ciphertext and
    no subject id (which would tell the same person across convoys)."""
    if not person:
        return person
    personal = person.get("personal") if privacy.is_sealed(person) else None
    hidden = {"sealed", "personal", "subject_id", "erased", *(personal or ())}
    return {**{k: v for k, v in person.items() if k not in hidden}, "name": WITHHELD}


def _party(party: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not party or not party.get("person"):
        return party
    return {**party, "person": _person(party["person"])}


def _no_sealed(value: Any) -> Any:
    """Any sealed person left anywhere in `value`, withheld."""
    if isinstance(value, Mapping):
        if privacy.is_sealed(value):
            return _person(value)
        return {k: _no_sealed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_no_sealed(v) for v in value]
    return value


def _without_people(data: dict[str, Any]) -> dict[str, Any]:
    if "drivers" in data:
        data["drivers"] = [{"vehicle": d.get("vehicle"), "name": WITHHELD} for d in data["drivers"]]
    for key in ("custody", "from_party", "to_party"):
        if key in data:
            data[key] = _party(data[key])
    if "confirmed_by" in data:
        data["confirmed_by"] = _person(data["confirmed_by"])
    if data.get("delivery"):
        data["delivery"] = _without_people(dict(data["delivery"]))
    out: dict[str, Any] = _no_sealed(data)
    return out


def _own_figures(data: dict[str, Any], own: str, donors: Mapping[str, str]) -> dict[str, Any]:
    def mine(line: Mapping[str, Any]) -> bool:
        return (line.get("donor_id") or donors.get(line["manifest_line_id"])) == own

    def hidden(line: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (None if k in LINE_FIGURES else v) for k, v in line.items()}

    if "manifest" in data:
        data["manifest"] = [x if mine(x) else hidden(x) for x in data["manifest"]]
    if "discrepancies" in data:
        data["discrepancies"] = [x for x in data["discrepancies"] if mine(x)]
    if "lines" in data:
        # delivered lines keep what was loaded; an incident's lines are all lost quantities
        delivered = all("received" in x for x in data["lines"])
        data["lines"] = (
            [x if mine(x) else hidden(x) for x in data["lines"]]
            if delivered
            else [x for x in data["lines"] if mine(x)]
        )
    if "incidents" in data:
        data["incidents"] = [_own_figures(dict(x), own, donors) for x in data["incidents"]]
    return data


def seen_by(
    caller: Principal,
    parties: Parties,
    data: Mapping[str, Any],
    *,
    donors: Mapping[str, str],
) -> dict[str, Any]:
    """A convoy's document, or the data of one of its events, as this caller may see it: the
    one redaction every view of a convoy goes through (the convoy, as of an instant, its
    timeline, the live stream, lists). Named people (drivers, persons holding the goods, who
    confirmed the delivery) are withheld unless the caller sees personal data, and stay
    sealed otherwise: `revealed` opens them; another donor's line keeps what was loaded but
    not what arrived, was damaged, short or lost. `donors`: manifest line id -> donor
    (line_donors of the convoy's document)."""
    out = dict(data)
    if not sees_personal_data(caller, parties):
        out = _without_people(out)
    if not sees_every_line(caller, parties):
        out = _own_figures(out, caller.organisation, donors)
    return out


def convoy_for(caller: Principal, document: Mapping[str, Any], parties: Parties) -> dict[str, Any]:
    """The convoy document as this caller may see it."""
    return seen_by(caller, parties, document, donors=line_donors(document))


async def revealed(conn: asyncpg.Connection, answer: T) -> T:
    """An answer built from `seen_by`, the sealed persons it still holds (those its caller may
    see) opened: decrypted, or `(erased)` once erased (shared/privacy.py). Every view calls it
    last."""
    opened: T = await privacy.reveal(conn, answer)
    return opened
