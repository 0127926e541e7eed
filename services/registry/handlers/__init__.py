"""The registry's use cases: one handler per command (commands.py), registered on HANDLERS,
run in a unit of work (shared/repository.py) whose transaction the caller owns.

organisations.py and partnerships.py decide on what they load through the repositories
(common.py) and append through them (which projects); api_keys.py keeps the keys' rows beside
their events; ports.py has what handlers need beyond the event store; registrations.py runs
registrations that arrive together as one transaction (shared/group_commit.py).
"""

from services.registry.handlers import api_keys, organisations, partnerships
from services.registry.handlers.common import (
    API_KEYS,
    HANDLERS,
    ORGANISATIONS,
    PARTNERSHIPS,
    run,
)
from services.registry.handlers.registrations import batchable, register_together
from shared.group_commit import Batched, SavepointsNeeded

__all__ = [
    "API_KEYS",
    "HANDLERS",
    "ORGANISATIONS",
    "PARTNERSHIPS",
    "Batched",
    "SavepointsNeeded",
    "api_keys",
    "batchable",
    "organisations",
    "partnerships",
    "register_together",
    "run",
]
