"""Configuration of delivery destinations and of the engine, checked at load with file, line and key."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.yamldoc import YamlDocumentError, parse_yaml
from gateway.delivery.breaker import BreakerConfig
from gateway.delivery.policy import Duration, PositiveDuration, RetryPolicy
from gateway.delivery.ratelimit import RateLimitConfig


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


class EngineSettings(_Section):
    """The engine's own timing, shared by every lane."""

    reaper_interval: PositiveDuration = 5.0  # how often expired leases are returned to their lanes
    idle_poll_min: PositiveDuration = 0.05  # an empty lane is polled again after this, doubling...
    idle_poll_max: PositiveDuration = 1.0  # ...up to this
    stop_grace: Duration = 10.0  # on stop, in-flight sends get this long to finish and be settled
    store_retry_delay: PositiveDuration = 1.0  # after a store error, a lane waits this long


class DeliveryConfig(_Section):
    """The `delivery` configuration: engine timing and the destinations, one lane each."""

    engine: EngineSettings = Field(default_factory=EngineSettings)
    destinations: list[DestinationConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> DeliveryConfig:
        names = [d.name for d in self.destinations]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"destination names must be unique: {', '.join(duplicates)}")
        return self


class DeliveryConfigError(ValueError):
    """A delivery configuration that cannot be used; every problem named by file, line and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_delivery_config(path: Path) -> DeliveryConfig:
    """Read a destinations file (`engine:` and `destinations:`); raise DeliveryConfigError naming each problem."""
    file = path.resolve()
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as err:
        raise DeliveryConfigError([f"{file}: cannot read the delivery configuration: {err.strerror}"]) from err
    try:
        doc = parse_yaml(text, str(file))
    except YamlDocumentError as err:
        raise DeliveryConfigError([str(err)]) from err
    data = doc.data or {}
    if not isinstance(data, dict):
        raise DeliveryConfigError([str(doc.error((), "the delivery configuration must be a mapping"))])
    try:
        return DeliveryConfig.model_validate(data)
    except ValidationError as err:
        problems = [str(doc.error(tuple(d["loc"]), d["msg"])) for d in err.errors(include_url=False)]
        raise DeliveryConfigError(problems) from err
