"""Shipments handlers: one per command (commands.py), registered on HANDLERS by type. Each
loads the convoy through its repository (repositories.py), checks who may act on it
(auth.py), asks its ports (ports.py) what else the rules need, lets the domain decide, and
records the events (common.record), which the unit of work projects in the same transaction.
The caller (shared/web.py write, or a test's InMemoryUnitOfWork) owns the transaction.

Every handler loads the convoy stream it decides on before its first write (see
shared/event_store.py).
"""

from services.shipments.handlers import delivery, planning, road
from services.shipments.handlers.common import HANDLERS
from services.shipments.handlers.ports import InMemoryPorts, Ports, PostgresPorts, ports_of
from services.shipments.handlers.repositories import CONVOYS
from services.shipments.handlers.road import EntriesRequest, record_entries_together
from shared.group_commit import SavepointsNeeded

__all__ = [
    "CONVOYS",
    "HANDLERS",
    "EntriesRequest",
    "InMemoryPorts",
    "Ports",
    "PostgresPorts",
    "SavepointsNeeded",
    "delivery",
    "planning",
    "ports_of",
    "record_entries_together",
    "road",
]
