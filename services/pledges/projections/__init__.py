"""Pledges events -> read-model rows. Idempotent: every update is guarded by the stream version,
so replaying an event changes nothing; a need's coverage adds up its lines' shares, each line
keeping its own (a change adds the difference).
`twinaid rebuild pledges` empties these tables and replays the log into them."""

from __future__ import annotations

from services.pledges import privacy
from services.pledges.projections import needs, pledges
from shared.projections import Projection

NEEDS = Projection(
    name="needs",
    tables=("needs",),
    handlers=needs.HANDLERS,
    batch=needs.apply_batch,
)

PLEDGES = Projection(
    name="pledges",
    tables=("pledges", "pledge_lines", "receipts", "deliveries"),
    handlers=pledges.HANDLERS,
    batch=pledges.apply_batch,
)

# which events hold each person (privacy_occurrences): access requests, retention
PRIVACY = privacy.projection()

ALL = (NEEDS, PLEDGES, PRIVACY)
