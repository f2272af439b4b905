"""Retry policy per destination and the pure decision after each attempt: delivered, retry at, or dead."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tenacity import RetryCallState, Retrying, wait_exponential

from adapters.destination import RetryPolicy
from adapters.wire.results import ErrorClass, SendResult
from contracts.delivery import AttemptOutcome


class DecisionKind(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True)
class Decision:
    """What to do with a delivery after one attempt, and how to record that attempt."""

    kind: DecisionKind
    outcome: AttemptOutcome  # the class of the attempt itself: success, retryable, permanent
    reason: str  # success | retryable | permanent_status | attempts_exhausted | age_exhausted
    retry_at: datetime | None = None
    delay: float | None = None  # seconds from `now` to retry_at


def classify(policy: RetryPolicy, result: SendResult) -> AttemptOutcome:
    """2xx success; 408, 429, 5xx (and configured codes) and no response retry; other codes permanent."""
    code = result.status_code
    if code is None:
        return AttemptOutcome.RETRY
    if 200 <= code < 300:
        return AttemptOutcome.SUCCESS
    if code >= 500 or code in policy.retry_statuses:
        return AttemptOutcome.RETRY
    if 300 <= code < 400 and policy.redirects == "retry":
        return AttemptOutcome.RETRY
    return AttemptOutcome.PERMANENT


def _retry_state(attempt_number: int) -> RetryCallState:
    # tenacity's wait strategies read only attempt_number from the state they are given.
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt_number
    return state


def backoff_delay(policy: RetryPolicy, attempt_number: int, rng: random.Random) -> float:
    """Seconds to wait after failed attempt `attempt_number` (1-based), jitter included.

    The capped exponential comes from tenacity's `wait_exponential`. Its jittered siblings
    (`wait_random_exponential`, `wait_exponential_jitter`) draw from the global `random` module and
    only offer full or additive jitter, so the jitter is applied here with an injected generator:
    that keeps `decide` reproducible in tests and gives equal jitter too.
    """
    n = max(attempt_number, 1)
    if policy.backoff == "schedule":
        base = policy.schedule[min(n, len(policy.schedule)) - 1]
        spread = policy.schedule_jitter_percent / 100.0
        return base * (1.0 + rng.uniform(-spread, spread))
    cap = wait_exponential(multiplier=policy.initial_delay, max=policy.max_delay,
                           exp_base=policy.exp_base)(_retry_state(n))
    if policy.jitter == "full":
        return rng.uniform(0.0, cap)
    if policy.jitter == "equal":
        return cap / 2.0 + rng.uniform(0.0, cap / 2.0)
    return float(cap)


def backoff_bounds(policy: RetryPolicy, attempt_number: int) -> tuple[float, float]:
    """The smallest and largest delay `backoff_delay` can return for this attempt (for tests and docs)."""
    n = max(attempt_number, 1)
    if policy.backoff == "schedule":
        base = policy.schedule[min(n, len(policy.schedule)) - 1]
        spread = policy.schedule_jitter_percent / 100.0
        return base * (1.0 - spread), base * (1.0 + spread)
    cap = float(wait_exponential(multiplier=policy.initial_delay, max=policy.max_delay,
                                 exp_base=policy.exp_base)(_retry_state(n)))
    low = {"full": 0.0, "equal": cap / 2.0, "none": cap}[policy.jitter]
    return low, cap


def bounded_retry_after(policy: RetryPolicy, retry_after: float) -> float:
    """A receiver's Retry-After, clamped to the policy's [retry_after_min, retry_after_max]."""
    return min(max(retry_after, policy.retry_after_min), policy.retry_after_max)


_THROTTLE_ERRORS = frozenset({ErrorClass.TIMEOUT, ErrorClass.CONNECT_TIMEOUT})


def decide(policy: RetryPolicy, attempt_number: int, first_created_at: datetime, now: datetime,
           outcome: SendResult, rng: random.Random | None = None) -> Decision:
    """After attempt `attempt_number` (1-based) ended at `now`: delivered, retry at a time, or dead.

    A retry never starts after first_created_at + max_age: a retry that would is moved to that
    moment, so the delivery gets one last try at its deadline; an attempt failing at or after the
    deadline is the last one. A Retry-After the receiver sent is bounded and then waited at least.
    """
    kind = classify(policy, outcome)
    if kind is AttemptOutcome.SUCCESS:
        return Decision(DecisionKind.DELIVERED, kind, "success")
    if kind is AttemptOutcome.PERMANENT:
        return Decision(DecisionKind.DEAD, kind, "permanent_status")
    if attempt_number >= policy.max_attempts:
        return Decision(DecisionKind.DEAD, kind, "attempts_exhausted")
    deadline = first_created_at + timedelta(seconds=policy.max_age)
    if now >= deadline:
        return Decision(DecisionKind.DEAD, kind, "age_exhausted")
    delay = backoff_delay(policy, attempt_number, rng or random.Random())  # noqa: S311 - jitter, not secrets
    if outcome.status_code in (408, 429) or outcome.error_class in _THROTTLE_ERRORS:
        delay = max(delay, policy.throttle_min_delay)
    if outcome.retry_after is not None:
        delay = max(delay, bounded_retry_after(policy, outcome.retry_after))
    retry_at = min(now + timedelta(seconds=delay), deadline)
    return Decision(DecisionKind.RETRY, kind, "retryable", retry_at=retry_at,
                    delay=(retry_at - now).total_seconds())
