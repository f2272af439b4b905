"""Retry policy per destination and the pure decision after each attempt: delivered, retry at, or dead."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from tenacity import RetryCallState, Retrying, wait_exponential

from contracts.delivery import AttemptOutcome
from gateway.delivery.results import ErrorClass, SendResult

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> object:
    """Seconds from a number or a string like `500ms`, `5s`, `30m`, `2h`, `1d`; other values pass through."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match is None:
            raise ValueError(f"not a duration: {value!r} (use a number of seconds or e.g. 5s, 30m, 2h, 1d)")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
PositiveDuration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]


class RetryPolicy(BaseModel):
    """How one destination's failed attempts are retried, and when a delivery gives up."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backoff: Literal["exponential", "schedule"] = "exponential"
    # exponential: the n-th retry waits up to initial_delay * exp_base**(n-1), capped at max_delay.
    initial_delay: PositiveDuration = 5.0
    exp_base: Annotated[float, Field(gt=1)] = 2.0
    max_delay: PositiveDuration = 6 * 3600.0
    # full: uniform in [0, cap]; equal: uniform in [cap/2, cap] (never retries at once); none: the cap.
    jitter: Literal["full", "equal", "none"] = "equal"
    # schedule: the n-th retry waits schedule[n-1] (the last entry repeats), ± schedule_jitter_percent.
    schedule: tuple[PositiveDuration, ...] = ()
    schedule_jitter_percent: Annotated[float, Field(ge=0, lt=100)] = 20.0
    max_attempts: Annotated[int, Field(ge=1)] = 12
    max_age: PositiveDuration = 3 * 86400.0  # no attempt starts later than created_at + max_age
    retry_after_min: Duration = 1.0
    retry_after_max: PositiveDuration = 3600.0
    throttle_min_delay: Duration = 0.0  # 429, 408 and timeouts wait at least this long
    retry_statuses: frozenset[int] = frozenset({408, 429})  # retried besides every 5xx
    redirects: Literal["permanent", "retry"] = "permanent"  # redirects are never followed

    @model_validator(mode="after")
    def _consistent(self) -> RetryPolicy:
        if self.backoff == "schedule" and not self.schedule:
            raise ValueError("backoff 'schedule' needs a non-empty schedule, e.g. [5s, 30s, 5m, 30m, 2h]")
        if self.retry_after_min > self.retry_after_max:
            raise ValueError("retry_after_min must not exceed retry_after_max")
        if self.initial_delay > self.max_delay:
            raise ValueError("initial_delay must not exceed max_delay")
        if any(not 100 <= code <= 599 for code in self.retry_statuses):
            raise ValueError("retry_statuses must be HTTP status codes (100-599)")
        return self


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


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds from a Retry-After value (delta-seconds or an HTTP date); None when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT by definition
        return None
    return max((when - now).total_seconds(), 0.0)


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
