"""The state of a pledge, folded from its events (see history.py)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum
from typing import Any

from services.pledges.domain.lines import Line
from shared.domain_checks import Record
from shared.errors import NotFound

__all__ = ["Pledge", "PledgeStatus", "status_of"]


class PledgeStatus(StrEnum):
    PLEDGED = "pledged"
    COMMITTED = "committed"
    PARTLY_FULFILLED = "partly_fulfilled"
    FULFILLED = "fulfilled"
    WITHDRAWN = "withdrawn"


@dataclass(frozen=True, slots=True)
class Pledge(Record):
    pledge_id: str
    version: int = 0
    donor_id: str = ""
    recipient_id: str = ""
    partnership_id: str | None = None
    description: str | None = None
    internal_note: str | None = None
    contact: dict[str, Any] | None = None
    lines: tuple[Line, ...] = ()
    committed: bool = False
    withdrawn: bool = False
    withdrawal_reason: str | None = None
    correlation_id: str | None = None
    made_at: datetime | None = None
    committed_at: datetime | None = None
    withdrawn_at: datetime | None = None
    last_changed_at: datetime | None = None

    @property
    def status(self) -> PledgeStatus:
        lines = [line.progress for line in self.lines]
        return status_of(committed=self.committed, withdrawn=self.withdrawn, lines=lines)

    def line(self, line_id: str) -> Line:
        for line in self.lines:
            if line.line_id == line_id:
                return line
        raise NotFound(f"pledge {self.pledge_id} has no line {line_id}")

    def with_line(self, line: Line) -> Pledge:
        return replace(
            self, lines=tuple(line if x.line_id == line.line_id else x for x in self.lines)
        )


def status_of(
    *, committed: bool, withdrawn: bool, lines: Iterable[tuple[bool, bool]]
) -> PledgeStatus:
    """A pledge's status from whether it was committed or withdrawn and, for each line,
    whether it is complete and whether anything arrived on it (lines.progress): the one rule
    the state and the read models (projections/pledges.py) both follow."""
    if withdrawn:
        return PledgeStatus.WITHDRAWN
    if not committed:
        return PledgeStatus.PLEDGED
    progress = list(lines)
    if all(complete for complete, _ in progress):
        return PledgeStatus.FULFILLED
    if any(started for _, started in progress):
        return PledgeStatus.PARTLY_FULFILLED
    return PledgeStatus.COMMITTED
