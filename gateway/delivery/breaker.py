"""Circuit breaker per destination: stop sending to a failing receiver, probe it, resume when it answers."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from adapters.destination import BreakerConfig


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, eq=False)
class Permit:
    """Leave to make one call; hand it back with `record` or `release` (each permit is its own identity)."""

    probe: bool
    generation: int  # which closed/half-open period issued it; stale results are ignored


@dataclass(frozen=True)
class BreakerSnapshot:
    """The breaker as ops and metrics see it."""

    state: BreakerState
    calls_in_window: int
    failures_in_window: int
    reopens_in: float  # seconds until a probe may go; 0 unless open
    times_opened: int
    probe_in_flight: bool


class CircuitBreaker:
    """A failure-ratio breaker over a sliding time window; pure logic, the clock is injected."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._calls: deque[tuple[float, bool]] = deque()  # (when, failed)
        self._failures = 0
        self._opened_at = 0.0
        self._probe: Permit | None = None  # the one probe out while half-open
        self._generation = 0
        self.times_opened = 0

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.config.cool_down:
            self._state = BreakerState.HALF_OPEN
            self._probe = None
        return self._state

    def reopens_in(self) -> float:
        """Seconds until the breaker half-opens; 0 when it is not open."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(self._opened_at + self.config.cool_down - self._clock(), 0.0)

    def acquire(self) -> Permit | None:
        """Leave for one call: always when closed, one probe at a time when half-open, never when open."""
        if not self.config.enabled:
            return Permit(probe=False, generation=self._generation)
        state = self.state
        if state is BreakerState.CLOSED:
            return Permit(probe=False, generation=self._generation)
        if state is BreakerState.HALF_OPEN and self._probe is None:
            self._probe = Permit(probe=True, generation=self._generation)
            return self._probe
        return None

    def renew(self, permit: Permit | None) -> Permit | None:
        """Leave for a call about to go now under a permit issued earlier: that permit while the breaker has
        not changed state since, else what acquire() gives now."""
        if permit is not None and permit.generation == self._generation and (
                not permit.probe or permit is self._probe):
            return permit
        return self.acquire()

    def release(self, permit: Permit) -> None:
        """The permitted call was not made (nothing to send) or says nothing about the receiver's health."""
        if permit is self._probe:
            self._probe = None

    def record(self, permit: Permit, failed: bool) -> None:
        """The outcome of a permitted call."""
        if not self.config.enabled or permit.generation != self._generation:
            return  # issued before the breaker last changed state: says nothing about now
        now = self._clock()
        if permit.probe:
            if permit is not self._probe:
                return  # released already, or superseded
            self._probe = None
            if self.state is BreakerState.HALF_OPEN:
                if failed:
                    self._open(now)
                else:
                    self._close()
            return
        if self._state is not BreakerState.CLOSED:
            return
        self._calls.append((now, failed))
        self._failures += failed
        self._expire(now)
        calls = len(self._calls)
        if calls >= self.config.min_calls and self._failures / calls >= self.config.failure_ratio:
            self._open(now)

    def snapshot(self) -> BreakerSnapshot:
        if self._state is BreakerState.CLOSED:
            self._expire(self._clock())
        return BreakerSnapshot(state=self.state, calls_in_window=len(self._calls),
                               failures_in_window=self._failures, reopens_in=self.reopens_in(),
                               times_opened=self.times_opened, probe_in_flight=self._probe is not None)

    def _expire(self, now: float) -> None:
        horizon = now - self.config.window
        while self._calls and self._calls[0][0] <= horizon:
            _, failed = self._calls.popleft()
            self._failures -= failed

    def _open(self, now: float) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = now
        self._probe = None
        self._generation += 1
        self.times_opened += 1
        self._calls.clear()
        self._failures = 0

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._generation += 1
        self._calls.clear()
        self._failures = 0
