"""Delivery and attempt receipts: what the gateway tells about getting a ticket where it goes."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field

from contracts.base import ContractModel

RESPONSE_BODY_LIMIT = 16 * 1024


class DeliveryKind(StrEnum):
    FORWARD = "forward"  # the ticket to the national platform
    CALLBACK = "callback"  # a status change back to the originating partner
    ROUTED = "routed"  # a side delivery chosen by routing rules (enforcement, credit, emergency)


class DeliveryState(StrEnum):
    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    RETRYING = "retrying"
    DELIVERED = "delivered"
    DEAD = "dead"


class AttemptOutcome(StrEnum):
    SUCCESS = "success"
    RETRY = "retry"
    PERMANENT = "permanent"


class AttemptReceipt(ContractModel):
    """One try at one delivery."""

    delivery_id: str
    number: Annotated[int, Field(ge=1)]
    started_at: AwareDatetime
    duration_ms: Annotated[float, Field(ge=0)]
    status_code: int | None = None
    error_class: Annotated[str, Field(max_length=100)] | None = None
    outcome: AttemptOutcome
    response_body: Annotated[str, Field(max_length=RESPONSE_BODY_LIMIT)] | None = None


class DeliveryReceipt(ContractModel):
    """Where one delivery of one ticket stands."""

    delivery_id: str
    ticket_id: str
    destination: Annotated[str, Field(min_length=1, max_length=64)]
    kind: DeliveryKind
    state: DeliveryState
    idempotency_key: str
    attempts: Annotated[int, Field(ge=0)] = 0
    created_at: AwareDatetime
    next_attempt_at: AwareDatetime | None = None
    delivered_at: AwareDatetime | None = None
    last_error_class: str | None = None
    last_status_code: int | None = None
