"""Delivery and attempt receipts: what the gateway tells about getting a ticket where it goes."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AwareDatetime, Field

from contracts.base import ContractModel

RESPONSE_BODY_LIMIT = 16 * 1024


class DeliveryKind(StrEnum):
    FORWARD = "forward"  # the ticket to the national platform
    CALLBACK = "callback"  # a status change back to the originating partner
    ROUTED = "routed"  # a side delivery chosen by routing rules (enforcement, credit, emergency)
    # Follow-ups of a forwarded ticket to the national platform, on its lane after the forward.
    UPDATE = "update"  # a new version or supplement: the same registration, updated
    URGE = "urge"  # the sender's 催办
    WITHDRAW = "withdraw"  # the sender's 撤诉/撤回
    ALERT = "alert"  # an operational alert to an ops channel (webhook, 企业微信, 钉钉, e-mail)


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


@dataclass(frozen=True)
class ReportedStatus:
    """Which status of its ticket a status callback tells the partner: the store keeps the sender's echo by it."""

    sequence: int  # the status event's sequence on the ticket
    status: str  # a Status value, e.g. "ACCEPTED"


@dataclass(frozen=True)
class OutboxEntry:
    """A delivery to make, written in the same step as the ticket change that caused it."""

    destination: str  # lane name, e.g. "national", "enforcement", "callback:city-12345-rest"
    kind: DeliveryKind
    body: bytes  # exactly what will be sent
    content_type: str = "application/json"
    priority: int = 1  # 0 goes ahead of everything else on the lane (特急)
    headers: dict[str, str] = field(default_factory=dict)
    # What the receiver dedupes on; None means the ticket's own idempotency key (a status callback
    # needs one of its own per event, or the partner would drop the second status as a repeat).
    idempotency_key: str | None = None
    # A status callback to the originating partner names the status it reports; None for anything else.
    reports: ReportedStatus | None = None


# A lane name becomes part of Redis keys and of a Redis Cluster hash tag: no braces, no spaces.
LANE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,63}$")


def check_destination(name: str) -> str:
    """The lane name unchanged, or ValueError saying why it cannot name a lane."""
    if not LANE_NAME.match(name):
        raise ValueError(
            f"destination {name!r} cannot name a delivery lane: use 1-64 of A-Z a-z 0-9 _ . : - "
            "(no braces or spaces; it becomes part of a Redis hash tag)"
        )
    return name


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery leased to one worker until `lease_until`; only the holder of `lease_token` may settle it."""

    delivery_id: str
    ticket_id: str
    destination: str
    kind: DeliveryKind
    idempotency_key: str
    body: bytes
    content_type: str
    headers: dict[str, str]
    attempts: int  # attempts made before this one
    created_at: datetime
    lease_token: str
    lease_until: datetime
    # The retry policy's budget (max attempts, max age) counts from here: 0 and created_at at first, the
    # attempts made so far and the moment of the replay once an operator replayed the dead letter.
    budget_attempts: int = 0
    budget_since: datetime | None = None
    # The status a status callback reports, as its outbox entry named it; None for any other delivery.
    reports: ReportedStatus | None = None
