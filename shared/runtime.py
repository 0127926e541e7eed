"""Process-wide settings of a long-running service process (an API or a worker).

CPython's cyclic garbage collector runs a young-generation collection whenever the tracked
objects allocated since the last one, less those freed, pass a threshold (700 by default), and
every tenth and hundredth of those walks the older generations too. The count starts again
from zero at each collection and never goes below it, so the churn of a server (32 requests in
flight, each holding some hundreds of tracked objects: coroutines, the scope, dicts, closures,
the validated body, the events) passes 700 every few requests, although reference counting
frees nearly all of it: the API's requests leave no cyclic garbage at all
(tests/registry/test_reference_cycles.py), yet under the append benchmark's load the registry
ran a young collection every 7 writes, about a sixth of its CPU (bench/append.py reports the
collections it saw, and the registry with Python's defaults beside it).

`tune_gc` raises the young threshold (GC_GEN0_THRESHOLD; 0 leaves the collector as Python
sets it) and moves everything alive after start-up (the app, its routes, models and schemas:
some 60,000 objects) out of the collector's way with `gc.freeze`, so the rarer full
collections do not walk them again. Cyclic garbage is still collected, only in larger batches.
"""

from __future__ import annotations

import gc

_frozen = False


def tune_gc(gen0_threshold: int) -> None:
    """Call once the process has started (its long-lived objects exist)."""
    global _frozen
    if gen0_threshold <= 0:
        return
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(gen0_threshold, older, oldest)
    if not _frozen:  # once a process: what later start-ups (tests' apps) leave stays collectable
        _frozen = True
        gc.collect()
        gc.freeze()
