"""Who may do what with a convoy, and what each reader sees of it.

- Plan, load, unload, cancel: the logistics role of the origin or of the carrier.
- Road entries: the carrier (member or logistics role), or the logistics role of the origin or
  the recipient.
- Confirm delivery: the recipient (member or logistics role).
- Close: the origin or the recipient (member or logistics), or the carrier's logistics role.
- Read: the origin, recipient, carrier and the donors of the lines on board; auditors read all.
- Drivers and other named people: only the carrier, the recipient and auditors.
- Delivered quantities and discrepancies: the sender, the recipient and the carrier for every
  line; a donor for its own lines.

Registry administrators (platform operators) may act for any organisation, as in the registry,
e.g. to record what a team reported by phone; every event names the key that wrote it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from shared.auth import Principal, Role
from shared.errors import Forbidden

OPERATOR = Role.REGISTRY_ADMIN
WITHHELD = "(withheld)"


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


def redact_party(party: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not party or not party.get("person"):
        return party
    return {**party, "person": {**party["person"], "name": WITHHELD}}


def redact_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """An event's data without named people (drivers, persons holding the goods)."""
    out = dict(data)
    if "drivers" in out:
        out["drivers"] = [{"vehicle": d.get("vehicle"), "name": WITHHELD} for d in out["drivers"]]
    for key in ("custody", "from_party", "to_party"):
        if key in out:
            out[key] = redact_party(out[key])
    return out


def convoy_for(caller: Principal, document: Mapping[str, Any], parties: Parties) -> dict[str, Any]:
    """The convoy document as this caller may see it."""
    doc = dict(document)
    if not sees_personal_data(caller, parties):
        doc = redact_data(doc)
    if not sees_every_line(caller, parties):
        own = caller.organisation
        doc["manifest"] = [
            line if line["donor_id"] == own else {**line, "delivered": None}
            for line in doc["manifest"]
        ]
        doc["discrepancies"] = [d for d in doc["discrepancies"] if d["donor_id"] == own]
    return doc
