"""A delivery destination's settings, shared by the delivery engine and the adapters' callback lanes.

A destination is a receiving system (its URL, timeouts, retry policy, breaker and rate limit); each has one
lane, the queue of deliveries waiting for it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

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


class BreakerConfig(BaseModel):
    """Open when at least `failure_ratio` of the calls in the last `window` failed (and there were
    at least `min_calls`); stay open for `cool_down`; then let one probe through."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    failure_ratio: Annotated[float, Field(gt=0, le=1)] = 0.5
    window: PositiveDuration = 30.0
    min_calls: Annotated[int, Field(ge=1)] = 10
    cool_down: PositiveDuration = 30.0


class RateLimitConfig(BaseModel):
    """`rate` sends per second per process (None: unlimited), with bursts of up to `burst`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: Annotated[float, Field(gt=0)] | None = None
    burst: Annotated[int, Field(ge=1)] = 1


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TimeoutConfig(_Section):
    """`connect`: to open the connection; `total`: the whole request, from first byte out to last byte in."""

    connect: PositiveDuration = 5.0
    total: PositiveDuration = 30.0

    @model_validator(mode="after")
    def _connect_within_total(self) -> TimeoutConfig:
        if self.connect > self.total:
            raise ValueError("timeout.connect must not exceed timeout.total")
        return self


class DestinationConfig(_Section):
    """One delivery lane: where its deliveries go and how hard the gateway tries."""

    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-:.]*$")]
    url: AnyHttpUrl | None = None  # required by the http sender; other sender kinds may not need it
    sender: Annotated[str, Field(min_length=1)] = "http"  # a kind registered in gateway.delivery.senders
    options: dict[str, Any] = Field(default_factory=dict)  # for the sender kind, e.g. a SOAP action
    headers: dict[str, str] = Field(default_factory=dict)  # sent with every request to this destination
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig)
    # A claim's lease must outlive the request, or the reaper hands a delivery still in flight to another
    # worker and it goes out twice at once. Default: total timeout + max(5 s, half of it).
    lease: PositiveDuration | None = None
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)
    concurrency: Annotated[int, Field(ge=1, le=1000)] = 8  # sends in flight at once, per process
    claim_batch: Annotated[int, Field(ge=1, le=500)] = 16  # deliveries leased per claim, at most
    pause_on_retry_after: bool = True  # a 429/503 with Retry-After pauses the whole lane that long

    @model_validator(mode="after")
    def _lease_outlives_request(self) -> DestinationConfig:
        if self.lease is not None and self.lease <= self.timeout.total + 1.0:
            raise ValueError(f"lease ({self.lease:g} s) must exceed timeout.total ({self.timeout.total:g} s) "
                             "by more than 1 s, so that a delivery is never in flight twice at once")
        if self.sender == "http" and self.url is None:
            raise ValueError("url is required for the http sender")
        return self

    @property
    def lease_seconds(self) -> float:
        if self.lease is not None:
            return self.lease
        return self.timeout.total + max(5.0, self.timeout.total / 2)


