"""A per-key rate limit: a token bucket per API key, in each API process."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from shared.errors import TooManyRequests


class RateLimiter:
    """`rate` requests a second on average, bursts up to `burst`; `rate <= 0` turns it off.

    `clock` gives seconds (monotonic); tests drive it by hand, so what a test sees does not
    depend on how fast the machine runs it."""

    def __init__(
        self, *, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str) -> None:
        """Spend one token of `key`'s bucket; raises TooManyRequests with Retry-After."""
        if self.rate <= 0:
            return
        at = self.clock()
        tokens, last = self._buckets.get(key, (float(self.burst), at))
        tokens = min(float(self.burst), tokens + (at - last) * self.rate)
        if tokens < 1:
            wait = math.ceil((1 - tokens) / self.rate)
            self._buckets[key] = (tokens, at)
            raise TooManyRequests(
                f"this key sent more than {self.rate:g} requests a second; retry in {wait} s",
                retry_after=wait,
            )
        self._buckets[key] = (tokens - 1, at)
