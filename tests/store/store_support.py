"""Helpers of the store specifications: realistic tickets, outbox entries and attempt receipts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.base import CHINA_STANDARD_TIME
from contracts.delivery import AttemptOutcome, AttemptReceipt, ClaimedDelivery, DeliveryKind, OutboxEntry
from contracts.ticket import Ticket

RESPONDENT_USCC = "91520100MA6DK2X98L"  # valid check character, letter registration authority


def make_ticket(no: str = "GZ-12345-20240611-0001", *, version: str = "1", phone: str | None = None,
                respondent: str | None = None, uscc: str | None = None,
                adapter_id: str = "city-12345-rest") -> Ticket:
    """A realistic 咨询 from the city 12345 hotline about a shop in 凯里."""
    at = datetime(2024, 6, 11, 9, 30, tzinfo=CHINA_STANDARD_TIME)
    data: dict[str, object] = {
        "source": {
            "source_system": "city-12345",
            "adapter_id": adapter_id,
            "source_ticket_no": no,
            "source_version": version,
            "source_received_at": at,
        },
        "classification": {"business_type": "01", "channel": "09", "origin_hotline": "12345"},
        "registration": {
            "registered_at": at,
            "content": "市民来电咨询：在凯里市某超市购买的预包装食品标签无生产日期，是否可以要求退货？",
        },
    }
    if phone is not None:
        data["complainant"] = {"name": "王女士", "phone": phone}
    if respondent is not None or uscc is not None:
        data["respondent"] = {"name": respondent, "uscc": uscc}
    return Ticket.model_validate(data)


def national(body: bytes = b'{"ticket":"..."}', priority: int = 1, destination: str = "national") -> OutboxEntry:
    return OutboxEntry(destination=destination, kind=DeliveryKind.FORWARD, body=body, priority=priority,
                       headers={"x-source": "city-12345"})


def attempt(claim: ClaimedDelivery, *, outcome: AttemptOutcome = AttemptOutcome.SUCCESS,
            status_code: int | None = 200, error_class: str | None = None,
            response_body: str | None = '{"code":0}') -> AttemptReceipt:
    return AttemptReceipt(
        delivery_id=claim.delivery_id, number=claim.attempts + 1, started_at=datetime.now(UTC),
        duration_ms=12.5, status_code=status_code, error_class=error_class, outcome=outcome,
        response_body=response_body,
    )


def soon(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)
