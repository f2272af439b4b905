"""Configuration of the national 12315 platform simulator: auth, event delivery and the fault plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.wire.webhooks import decode_secret

DEV_TOKEN = "dev-national-token"  # noqa: S105 - development only: anyone reading this file knows it
DEV_WEBHOOK_SECRET = "whsec_ZGV2LW5hdGlvbmFsLTEyMzE1LXdlYmhvb2sta2V5ISE="  # noqa: S105 - development only
DEFAULT_REGION_CODE = "522600"  # 黔东南州, the demo region

Ratio = Annotated[float, Field(ge=0.0, le=1.0)]
FAULT_KINDS = ("outage", "drop", "timeout", "rate_limit", "error", "latency")


class FaultPlan(BaseModel):
    """Which faults the national API serves; ratios are shares of requests and together at most 1."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    error_ratio: Ratio = 0.0
    error_status: Literal[500, 502, 503, 504] = 503
    rate_limit_ratio: Ratio = 0.0
    retry_after_seconds: Annotated[int, Field(ge=0, le=3600)] = 1
    latency_ms: Annotated[int, Field(ge=0, le=600_000)] = 0
    timeout_ratio: Ratio = 0.0
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 30.0
    drop_ratio: Ratio = 0.0
    outage_until: float | None = None
    # A timed-out or dropped request is handled first and only its response is lost, as happens in
    # production; that is what makes a client's retry a duplicate the idempotency key must absorb.
    lost_responses_processed: bool = True

    @model_validator(mode="after")
    def _ratios_share_one_draw(self) -> FaultPlan:
        total = self.error_ratio + self.rate_limit_ratio + self.timeout_ratio + self.drop_ratio
        if total > 1.0 + 1e-9:
            raise ValueError(
                f"error_ratio + rate_limit_ratio + timeout_ratio + drop_ratio is {total:g}; it cannot exceed 1"
            )
        return self


class FaultUpdate(BaseModel):
    """A change to the fault plan: only the fields given change; `outage_seconds` opens an outage from now."""

    model_config = ConfigDict(extra="forbid")

    error_ratio: Ratio | None = None
    error_status: Literal[500, 502, 503, 504] | None = None
    rate_limit_ratio: Ratio | None = None
    retry_after_seconds: Annotated[int, Field(ge=0, le=3600)] | None = None
    latency_ms: Annotated[int, Field(ge=0, le=600_000)] | None = None
    timeout_ratio: Ratio | None = None
    timeout_seconds: Annotated[float, Field(gt=0, le=3600)] | None = None
    drop_ratio: Ratio | None = None
    outage_until: float | None = None
    outage_seconds: Annotated[float, Field(ge=0, le=86_400)] | None = None
    lost_responses_processed: bool | None = None
    seed: int | None = None


class SimulatorConfig(BaseModel):
    """Everything the simulator needs at start-up; the CLI flags map onto these fields one to one."""

    model_config = ConfigDict(extra="forbid")

    gateway_status_url: str | None = None
    secrets: list[str] = Field(default_factory=lambda: [DEV_WEBHOOK_SECRET], min_length=1)
    token: str | None = DEV_TOKEN  # None: the national API takes unauthenticated calls
    api_key_header: str = "X-API-Key"
    region_code: Annotated[str, Field(pattern=r"^\d{6}$")] = DEFAULT_REGION_CODE
    auto_advance_seconds: Annotated[float, Field(gt=0)] | None = None
    seed: int | None = None
    state_file: Path | None = None
    faults: FaultPlan = Field(default_factory=FaultPlan)
    event_timeout_seconds: Annotated[float, Field(gt=0)] = 5.0
    event_max_attempts: Annotated[int, Field(ge=0)] = 12  # 0: keep trying until shut down
    event_retry_initial_seconds: Annotated[float, Field(gt=0)] = 0.5
    event_retry_max_seconds: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("secrets")
    @classmethod
    def _secrets_are_whsec(cls, value: list[str]) -> list[str]:
        for secret in value:
            decode_secret(secret)
        return value

    @field_validator("gateway_status_url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("gateway_status_url is an http:// or https:// URL")
        return value
