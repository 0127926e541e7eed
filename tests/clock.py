"""A clock that moves only when a test moves it: for what would otherwise race the machine."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ManualClock:
    """Seconds, like time.monotonic, standing still between `advance` calls."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
