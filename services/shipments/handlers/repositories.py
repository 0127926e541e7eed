"""The convoys' repository (shared/repository.py): every convoy stream is named, loaded and
appended to through it, by the handlers and the projection alike."""

from __future__ import annotations

from services.shipments import domain
from services.shipments import events as ev
from services.shipments.domain import codec
from shared.repository import Repository
from shared.snapshots import SnapshotFormat

__all__ = ["CONVOYS"]

# a convoy's state, snapshotted (its format: domain/codec.py) so that loading one costs the
# same at any history size
CONVOYS: Repository[domain.Convoy] = Repository(
    stream_type=ev.STREAM_CONVOY,
    codec=ev.CODEC,
    initial=domain.Convoy,
    evolve=domain.evolve,
    snapshot=SnapshotFormat(format=codec.FORMAT, encode=codec.encode, decode=codec.decode),
)
