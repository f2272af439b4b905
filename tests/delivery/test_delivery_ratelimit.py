"""Token bucket: a burst up to its size, then the configured rate."""

from __future__ import annotations

import pytest

from adapters.destination import RateLimitConfig
from gateway.delivery.ratelimit import TokenBucket


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_grants_its_burst_and_no_more() -> None:
    bucket = TokenBucket(rate=2, burst=5, clock=FakeClock())
    assert bucket.take(10) == 5
    assert bucket.take(1) == 0


def test_tokens_refill_at_the_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, burst=5, clock=clock)
    bucket.take(5)
    clock.now = 1.0
    assert bucket.take(5) == 2


def test_refill_stops_at_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=100, burst=3, clock=clock)
    clock.now = 60
    assert bucket.tokens == 3


def test_wait_time_says_when_a_token_is_due() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, burst=1, clock=clock)
    bucket.take(1)
    assert bucket.wait_time() == pytest.approx(0.25)
    clock.now = 0.25
    assert bucket.wait_time() == 0


def test_tokens_given_back_can_be_taken_again() -> None:
    bucket = TokenBucket(rate=1, burst=4, clock=FakeClock())
    bucket.take(4)
    bucket.give_back(3)
    assert bucket.take(4) == 3


def test_over_a_long_run_the_rate_holds() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, burst=2, clock=clock)
    granted = 0
    for step in range(1000):  # ten seconds in 10 ms steps, always asking
        clock.now = step / 100
        granted += bucket.take(5)
    assert 100 <= granted <= 102


def test_no_rate_means_no_bucket() -> None:
    assert TokenBucket.from_config(RateLimitConfig()) is None
