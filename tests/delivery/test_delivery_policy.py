"""Retry policy: status classes, the backoff schedule and its jitter bounds, Retry-After, limits by attempts and age."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from adapters.destination import RetryPolicy
from adapters.wire.results import ErrorClass, SendResult, parse_retry_after
from contracts.delivery import AttemptOutcome
from gateway.delivery.policy import DecisionKind, backoff_bounds, backoff_delay, classify, decide

CREATED = datetime(2024, 6, 11, 9, 0, tzinfo=UTC)
NOW = CREATED + timedelta(minutes=1)


def status(code: int, retry_after: float | None = None) -> SendResult:
    return SendResult(status_code=code, error_class=None if code < 300 else f"http_{code}", retry_after=retry_after)


NO_RESPONSE = SendResult(status_code=None, error_class=ErrorClass.CONNECTION_DROPPED)
TIMED_OUT = SendResult(status_code=None, error_class=ErrorClass.TIMEOUT)


@pytest.mark.parametrize("code", [200, 201, 202, 204, 299])
def test_2xx_is_success(code: int) -> None:
    assert classify(RetryPolicy(), status(code)) is AttemptOutcome.SUCCESS


@pytest.mark.parametrize("code", [408, 429, 500, 502, 503, 504, 599])
def test_408_429_and_5xx_are_retried(code: int) -> None:
    assert classify(RetryPolicy(), status(code)) is AttemptOutcome.RETRY


@pytest.mark.parametrize("code", [400, 401, 403, 404, 409, 410, 413, 422])
def test_other_4xx_are_permanent(code: int) -> None:
    assert classify(RetryPolicy(), status(code)) is AttemptOutcome.PERMANENT


def test_no_response_and_timeouts_are_retried() -> None:
    assert classify(RetryPolicy(), NO_RESPONSE) is AttemptOutcome.RETRY
    assert classify(RetryPolicy(), TIMED_OUT) is AttemptOutcome.RETRY


@pytest.mark.parametrize("code", [301, 302, 307, 308])
def test_redirects_are_permanent_unless_configured(code: int) -> None:
    assert classify(RetryPolicy(), status(code)) is AttemptOutcome.PERMANENT
    assert classify(RetryPolicy(redirects="retry"), status(code)) is AttemptOutcome.RETRY


def test_extra_retry_statuses_can_be_configured() -> None:
    policy = RetryPolicy(retry_statuses=frozenset({408, 429, 425}))
    assert classify(policy, status(425)) is AttemptOutcome.RETRY


def test_exponential_cap_doubles_from_the_initial_delay_up_to_the_maximum() -> None:
    policy = RetryPolicy(initial_delay=5, max_delay=60, jitter="none")
    assert [backoff_delay(policy, n, random.Random(0)) for n in range(1, 7)] == [5, 10, 20, 40, 60, 60]


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 30])
def test_equal_jitter_stays_between_half_the_cap_and_the_cap(attempt: int) -> None:
    policy = RetryPolicy(initial_delay=2, max_delay=300, jitter="equal")
    rng = random.Random(attempt)
    low, high = backoff_bounds(policy, attempt)
    assert low == high / 2
    delays = [backoff_delay(policy, attempt, rng) for _ in range(2000)]
    assert all(low <= d <= high for d in delays)
    assert min(delays) < low + (high - low) * 0.05
    assert max(delays) > high - (high - low) * 0.05


@pytest.mark.parametrize("attempt", [1, 2, 4, 10])
def test_full_jitter_stays_between_zero_and_the_cap(attempt: int) -> None:
    policy = RetryPolicy(initial_delay=1, max_delay=100, jitter="full")
    rng = random.Random(attempt)
    low, high = backoff_bounds(policy, attempt)
    assert (low, high) == (0.0, min(2.0 ** (attempt - 1), 100.0))
    delays = [backoff_delay(policy, attempt, rng) for _ in range(2000)]
    assert all(low <= d <= high for d in delays)
    assert min(delays) < high * 0.05
    assert max(delays) > high * 0.95


SCHEDULE = ("5s", "30s", "5m", "30m", "2h", "6h", "12h", "24h")


def test_explicit_schedule_reads_durations() -> None:
    policy = RetryPolicy(backoff="schedule", schedule=SCHEDULE)  # type: ignore[arg-type]
    assert policy.schedule == (5, 30, 300, 1800, 7200, 21600, 43200, 86400)


@pytest.mark.parametrize(("attempt", "base"), [(1, 5), (2, 30), (3, 300), (4, 1800), (8, 86400), (12, 86400)])
def test_explicit_schedule_with_jitter_stays_within_the_percent(attempt: int, base: float) -> None:
    policy = RetryPolicy(backoff="schedule", schedule=SCHEDULE, schedule_jitter_percent=20)  # type: ignore[arg-type]
    rng = random.Random(attempt)
    delays = [backoff_delay(policy, attempt, rng) for _ in range(2000)]
    assert backoff_bounds(policy, attempt) == pytest.approx((base * 0.8, base * 1.2))
    assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
    assert min(delays) < base * 0.82
    assert max(delays) > base * 1.18


def test_schedule_backoff_needs_a_schedule() -> None:
    with pytest.raises(ValidationError, match="non-empty schedule"):
        RetryPolicy(backoff="schedule")


def test_decide_is_reproducible_with_a_seeded_generator() -> None:
    policy = RetryPolicy()
    first = decide(policy, 3, CREATED, NOW, status(503), random.Random(7))
    again = decide(policy, 3, CREATED, NOW, status(503), random.Random(7))
    assert first == again
    assert first.kind is DecisionKind.RETRY


def test_success_is_delivered() -> None:
    decision = decide(RetryPolicy(), 1, CREATED, NOW, status(200))
    assert decision.kind is DecisionKind.DELIVERED
    assert decision.outcome is AttemptOutcome.SUCCESS


def test_permanent_status_is_dead_at_once() -> None:
    decision = decide(RetryPolicy(), 1, CREATED, NOW, status(422))
    assert (decision.kind, decision.outcome, decision.reason) == (
        DecisionKind.DEAD, AttemptOutcome.PERMANENT, "permanent_status")


def test_retry_is_scheduled_after_the_backoff() -> None:
    policy = RetryPolicy(initial_delay=10, jitter="none")
    decision = decide(policy, 2, CREATED, NOW, status(500))
    assert decision.kind is DecisionKind.RETRY
    assert decision.retry_at == NOW + timedelta(seconds=20)
    assert decision.outcome is AttemptOutcome.RETRY


def test_last_allowed_attempt_failing_is_dead() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert decide(policy, 2, CREATED, NOW, status(503)).kind is DecisionKind.RETRY
    decision = decide(policy, 3, CREATED, NOW, status(503))
    assert (decision.kind, decision.reason) == (DecisionKind.DEAD, "attempts_exhausted")


def test_a_retry_past_the_age_limit_is_moved_to_the_deadline() -> None:
    policy = RetryPolicy(initial_delay=3600, jitter="none", max_age="2h")  # type: ignore[arg-type]
    now = CREATED + timedelta(minutes=90)
    decision = decide(policy, 1, CREATED, now, status(503))
    assert decision.retry_at == CREATED + timedelta(hours=2)


def test_failing_at_or_after_the_age_limit_is_dead() -> None:
    policy = RetryPolicy(max_age="2h")  # type: ignore[arg-type]
    decision = decide(policy, 4, CREATED, CREATED + timedelta(hours=2), status(503))
    assert (decision.kind, decision.reason) == (DecisionKind.DEAD, "age_exhausted")


def test_retry_after_is_waited_when_longer_than_the_backoff() -> None:
    policy = RetryPolicy(initial_delay=1, jitter="none")
    decision = decide(policy, 1, CREATED, NOW, status(429, retry_after=120))
    assert decision.retry_at == NOW + timedelta(seconds=120)


def test_retry_after_is_bounded_above() -> None:
    policy = RetryPolicy(initial_delay=1, jitter="none", retry_after_max="10m")  # type: ignore[arg-type]
    decision = decide(policy, 1, CREATED, NOW, status(503, retry_after=86400))
    assert decision.delay == 600


def test_retry_after_is_bounded_below() -> None:
    policy = RetryPolicy(initial_delay=0.1, jitter="none", retry_after_min=2)
    decision = decide(policy, 1, CREATED, NOW, status(429, retry_after=0))
    assert decision.delay == 2


def test_backoff_longer_than_retry_after_wins() -> None:
    policy = RetryPolicy(initial_delay=300, jitter="none")
    decision = decide(policy, 1, CREATED, NOW, status(503, retry_after=5))
    assert decision.delay == 300


def test_throttles_and_timeouts_wait_at_least_the_floor() -> None:
    policy = RetryPolicy(initial_delay=1, jitter="none", throttle_min_delay="60s")  # type: ignore[arg-type]
    assert decide(policy, 1, CREATED, NOW, status(429)).delay == 60
    assert decide(policy, 1, CREATED, NOW, TIMED_OUT).delay == 60
    assert decide(policy, 1, CREATED, NOW, status(500)).delay == 1


def test_retry_after_in_seconds() -> None:
    assert parse_retry_after("120", NOW) == 120


def test_retry_after_as_an_http_date() -> None:
    when = NOW + timedelta(seconds=90)
    assert parse_retry_after(when.strftime("%a, %d %b %Y %H:%M:%S GMT"), NOW) == 90


def test_retry_after_in_the_past_means_now() -> None:
    assert parse_retry_after("Tue, 11 Jun 2024 08:00:00 GMT", NOW) == 0


@pytest.mark.parametrize("value", [None, "", "soon", "-5", "1.5e3"])
def test_unreadable_retry_after_is_ignored(value: str | None) -> None:
    assert parse_retry_after(value, NOW) is None


def test_retry_after_bounds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="retry_after_min"):
        RetryPolicy(retry_after_min=100, retry_after_max=10)
