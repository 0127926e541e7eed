"""A per-key rate limit: a token bucket per API key, in each API process."""

from __future__ import annotations

import math
import time

from shared.errors import TooManyRequests


class RateLimiter:
    """`rate` requests a second on average, bursts up to `burst`; `rate <= 0` turns it off."""

    def __init__(self, *, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)

    def take(self, key: str, *, now: float | None = None) -> None:
        """Spend one token of `key`'s bucket; raises TooManyRequests with Retry-After."""
        if self.rate <= 0:
            return
        at = time.monotonic() if now is None else now
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
