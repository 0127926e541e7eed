"""tune_gc (shared/runtime.py): a raised young threshold, the older ones kept, and 0 leaves
CPython's collector alone."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from shared import runtime


@pytest.fixture(autouse=True)
def thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 11, 12)
    yield
    gc.set_threshold(*before)


def test_the_young_threshold_is_raised_and_the_older_ones_kept() -> None:
    runtime.tune_gc(25_000)
    assert gc.get_threshold() == (25_000, 11, 12)
    assert gc.get_freeze_count() > 0


def test_zero_leaves_the_collector_as_python_sets_it() -> None:
    runtime.tune_gc(0)
    runtime.tune_gc(-1)
    assert gc.get_threshold() == (700, 11, 12)


def test_the_process_freezes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Later start-ups in the same process (tests build many apps) freeze nothing more: what
    they leave behind stays collectable."""
    monkeypatch.setattr(runtime, "_frozen", False)
    runtime.tune_gc(20_000)
    frozen = gc.get_freeze_count()
    made_since = [[] for _ in range(100)]  # what a second freeze would take
    runtime.tune_gc(30_000)
    assert gc.get_threshold() == (30_000, 11, 12)
    # nothing more frozen (what was frozen may still be freed, so the count may go down)
    assert gc.get_freeze_count() <= frozen, made_since
