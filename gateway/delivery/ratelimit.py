"""Token bucket per destination: at most `rate` sends a second on average, bursts up to `burst`."""

from __future__ import annotations

import time
from collections.abc import Callable

from adapters.destination import RateLimitConfig


class TokenBucket:
    """Tokens refill continuously at `rate` a second up to `burst`; pure logic, the clock is injected."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    @classmethod
    def from_config(cls, config: RateLimitConfig,
                    clock: Callable[[], float] = time.monotonic) -> TokenBucket | None:
        return None if config.rate is None else cls(config.rate, config.burst, clock)

    @property
    def tokens(self) -> float:
        self._refill()
        return self._tokens

    def take(self, wanted: int = 1) -> int:
        """Take up to `wanted` whole tokens; how many were granted (possibly 0)."""
        self._refill()
        granted = min(int(self._tokens), max(wanted, 0))
        self._tokens -= granted
        return granted

    def give_back(self, count: int) -> None:
        """Return tokens taken for sends that were not made."""
        self._refill()
        self._tokens = min(self._tokens + max(count, 0), float(self.burst))

    def wait_time(self, wanted: int = 1) -> float:
        """Seconds until `wanted` tokens (at most `burst`) are available."""
        self._refill()
        missing = min(wanted, self.burst) - self._tokens
        return max(missing / self.rate, 0.0)

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self._tokens + (now - self._at) * self.rate, float(self.burst))
        self._at = now
