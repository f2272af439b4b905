"""What one send produced, and the stable names of the ways a send can fail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum


class ErrorClass(StrEnum):
    """Stable names for failures without a usable response; operators filter and replay by them."""

    TIMEOUT = "timeout"  # no complete response within the destination's total timeout
    CONNECT_TIMEOUT = "connect_timeout"
    CONNECT_ERROR = "connect_error"  # refused, unreachable, DNS
    CONNECTION_DROPPED = "connection_dropped"  # the peer closed or reset the connection mid-exchange
    NETWORK_ERROR = "network_error"
    SENDER_ERROR = "sender_error"  # the sender itself failed (a bug or a bad configuration)
    # The receiver took it, but what it answered (the national registration number, the answer to a follow-up)
    # could not be kept on the ticket: sent again later, the receiver's idempotency key gets the same answer.
    ANSWER_NOT_KEPT = "answer_not_kept"


def http_error_class(status_code: int) -> str:
    """The error class recorded for a response that is not a success, e.g. `http_503`."""
    return f"http_{status_code}"


@dataclass(frozen=True)
class SendResult:
    """One try at one delivery, as seen by the sender."""

    status_code: int | None  # None when no response arrived
    body: str | None = None  # the response body, at most 16 KB
    error_class: str | None = None  # None for a 2xx; `http_<code>` or an ErrorClass otherwise
    retry_after: float | None = None  # seconds the receiver asked us to wait, unbounded as received
    duration: float = 0.0  # seconds from the start of the request to the end of the response
    # The Standard Webhooks headers of a signed answer (webhook-id, -timestamp, -signature), when it had them.
    signature_headers: Mapping[str, str] = field(default_factory=dict)


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
