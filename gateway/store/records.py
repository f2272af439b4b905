"""Conversions shared by both stores: times as epoch milliseconds, attempt bodies."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from contracts.delivery import RESPONSE_BODY_LIMIT, AttemptReceipt, ClaimedDelivery
from contracts.errors import FieldError
from contracts.ticket import Ticket, TicketLink
from gateway.store.base import AlertRecord


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_ms(at: datetime) -> int:
    if at.tzinfo is None:
        raise ValueError("a naive datetime has no place in the store; give it a time zone")
    return int(at.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def minute_start_ms(at: datetime) -> int:
    """The start of the minute `at` falls in, as epoch milliseconds (the key of per-minute counters)."""
    ms = to_ms(at)
    return ms - ms % 60_000


def truncate_utf8(text: str, limit: int = RESPONSE_BODY_LIMIT) -> str:
    """At most `limit` bytes of UTF-8, cut on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")


def attempt_to_record(claim: ClaimedDelivery, attempt: AttemptReceipt) -> AttemptReceipt:
    """The attempt as the store keeps it: this delivery's id, the next number, the body cut to 16 KB."""
    body = attempt.response_body
    return attempt.model_copy(
        update={
            "delivery_id": claim.delivery_id,
            "number": claim.attempts + 1,
            "response_body": truncate_utf8(body) if body is not None else None,
        }
    )


def errors_json(errors: list[FieldError]) -> str:
    """A quarantine record's errors (or a 退单's notes) as the stores keep them."""
    return json.dumps([e.model_dump(mode="json") for e in errors], ensure_ascii=False)


def payload_digest(content_type: str, body: bytes) -> str:
    """What makes two quarantined payloads the same one: their bytes and how they are to be read (SHA-256, hex)."""
    digest = hashlib.sha256(content_type.strip().lower().encode("utf-8"))
    digest.update(b"\x00")
    digest.update(body)
    return digest.hexdigest()


def with_link_back(ticket: Ticket, link: TicketLink, most: int) -> Ticket | None:
    """The ticket showing `link` too; None when it shows a link to that ticket already, or `most` links."""
    links = links_with(ticket.links, link, most)
    return None if links is None else ticket.model_copy(update={"links": links})


def links_with(links: Sequence[TicketLink], link: TicketLink, most: int) -> list[TicketLink] | None:
    """A ticket's links with `link` after them; None when they have a link to that ticket already, or `most` links."""
    if len(links) >= most or any(known.ticket_id == link.ticket_id for known in links):
        return None
    return [*links, link]


def next_revision(ticket: Ticket, read_at: int | None) -> Ticket:
    """The ticket as a save stores it: one revision past the one it was read at (its own when not given)."""
    revision = (ticket.lifecycle.revision if read_at is None else read_at) + 1
    return ticket.model_copy(update={"lifecycle": ticket.lifecycle.model_copy(update={"revision": revision})})


_ALERT_TIMES = ("started_at", "updated_at", "last_seen_at", "resolved_at", "notified_at")


def alert_to_json(alert: AlertRecord) -> str:
    """An alert record as both stores keep it: JSON, times as epoch milliseconds."""
    data: dict[str, object] = dict(alert.__dict__)
    for name in _ALERT_TIMES:
        at = data[name]
        data[name] = to_ms(at) if isinstance(at, datetime) else None
    data["details"], data["owed"] = list(alert.details), list(alert.owed)
    return json.dumps(data, ensure_ascii=False)


def alert_from_json(text: str) -> AlertRecord:
    data = json.loads(text)
    for name in _ALERT_TIMES:
        data[name] = from_ms(int(data[name])) if data.get(name) is not None else None
    data["details"], data["owed"] = tuple(data["details"]), tuple(data["owed"])
    return AlertRecord(**data)
