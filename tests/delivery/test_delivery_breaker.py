"""Circuit breaker: opens on a failure ratio over a window, cools down, lets one probe through, closes or reopens."""

from __future__ import annotations

from adapters.destination import BreakerConfig
from gateway.delivery.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def breaker(clock: FakeClock, **overrides: object) -> CircuitBreaker:
    config = BreakerConfig.model_validate({"failure_ratio": 0.5, "window": 10, "min_calls": 4,
                                           "cool_down": 30, **overrides})
    return CircuitBreaker(config, clock)


def call(b: CircuitBreaker, failed: bool) -> None:
    permit = b.acquire()
    assert permit is not None
    b.record(permit, failed)


def test_starts_closed_and_lets_calls_through() -> None:
    b = breaker(FakeClock())
    assert b.state is BreakerState.CLOSED
    permit = b.acquire()
    assert permit is not None
    assert not permit.probe


def test_does_not_open_below_the_minimum_number_of_calls() -> None:
    b = breaker(FakeClock())
    for _ in range(3):
        call(b, failed=True)
    assert b.state is BreakerState.CLOSED


def test_opens_when_the_failure_ratio_is_reached() -> None:
    b = breaker(FakeClock())
    for failed in (False, True, False, True):
        call(b, failed)
    assert b.state is BreakerState.OPEN
    assert b.acquire() is None
    assert b.times_opened == 1


def test_stays_closed_below_the_failure_ratio() -> None:
    b = breaker(FakeClock())
    for failed in (False, False, False, True, False, True, False):
        call(b, failed)
    assert b.state is BreakerState.CLOSED


def test_failures_older_than_the_window_are_forgotten() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(3):
        call(b, failed=True)
    clock.advance(11)
    call(b, failed=True)
    assert b.state is BreakerState.CLOSED
    assert b.snapshot().calls_in_window == 1


def test_stays_open_for_the_cool_down() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        call(b, failed=True)
    clock.advance(29)
    assert b.state is BreakerState.OPEN
    assert b.reopens_in() == 1


def test_half_opens_after_the_cool_down_and_lets_one_probe_through() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        call(b, failed=True)
    clock.advance(30)
    assert b.state is BreakerState.HALF_OPEN
    probe = b.acquire()
    assert probe is not None
    assert probe.probe
    assert b.acquire() is None
    assert b.snapshot().probe_in_flight


def test_a_successful_probe_closes_it() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        call(b, failed=True)
    clock.advance(30)
    probe = b.acquire()
    assert probe is not None
    b.record(probe, failed=False)
    assert b.state is BreakerState.CLOSED
    assert b.snapshot().calls_in_window == 0


def test_a_failed_probe_reopens_it_for_another_cool_down() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        call(b, failed=True)
    clock.advance(30)
    probe = b.acquire()
    assert probe is not None
    b.record(probe, failed=True)
    assert b.state is BreakerState.OPEN
    assert b.reopens_in() == 30
    assert b.times_opened == 2


def test_a_released_probe_lets_another_probe_go() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        call(b, failed=True)
    clock.advance(30)
    probe = b.acquire()
    assert probe is not None
    b.release(probe)
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire() is not None


def test_results_of_calls_made_before_it_opened_do_not_count_after() -> None:
    clock = FakeClock()
    b = breaker(clock)
    late = b.acquire()
    assert late is not None
    for _ in range(4):
        call(b, failed=True)
    clock.advance(30)
    probe = b.acquire()
    assert probe is not None
    b.record(late, failed=False)  # a slow call from the closed period ends now: it is not the probe
    assert b.state is BreakerState.HALF_OPEN
    b.record(probe, failed=False)
    assert b.state is BreakerState.CLOSED


def test_disabled_breaker_never_opens() -> None:
    b = breaker(FakeClock(), enabled=False)
    for _ in range(20):
        call(b, failed=True)
    assert b.state is BreakerState.CLOSED


def test_a_probe_handed_back_twice_does_not_free_a_newer_probe() -> None:
    clock = FakeClock()
    b = breaker(clock)
    for _ in range(4):
        call(b, failed=True)
    clock.advance(30)
    first = b.acquire()
    assert first is not None
    b.release(first)
    second = b.acquire()
    assert second is not None
    b.release(first)  # a late second release of the old probe
    assert b.acquire() is None


def test_a_permit_issued_before_the_breaker_opened_is_not_renewed() -> None:
    """A delivery claimed ahead goes under its old permit only while the breaker has not changed state since."""
    clock = FakeClock()
    b = breaker(clock)
    early = b.acquire()
    assert early is not None
    assert b.renew(early) is early  # still closed: the same permit
    for _ in range(4):
        call(b, failed=True)
    assert b.renew(early) is None  # opened since: no call may go
    clock.advance(30)
    probe = b.renew(early)
    assert probe is not None and probe.probe  # half-open: it goes as the one probe...
    assert b.renew(probe) is probe
    assert b.renew(early) is None  # ...and no other with it
    b.record(probe, failed=False)
    renewed = b.renew(early)
    assert renewed is not None and renewed is not early and not renewed.probe  # closed again: a fresh permit
