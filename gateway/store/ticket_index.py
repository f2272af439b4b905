"""What tickets are searched by: the index names, a ticket's values for them, a TicketQuery's values to match."""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from contracts.ticket import Ticket
from gateway.store.base import TicketQuery
from gateway.store.phone_hash import hash_phone

# The attributes a ticket is searched by; each store indexes exactly these (SQLite: columns of that name).
TICKET_INDEXES = (
    "adapter_id",
    "status",
    "national_registration_no",
    "source_ticket_no",
    "respondent_uscc",
    "respondent_name",
    "complainant_phone_hash",
    "held",
)


def ticket_index_values(ticket: Ticket, phone_key: bytes) -> dict[str, str | None]:
    """The searchable attributes of a ticket; the phone only as its keyed hash."""
    phone = ticket.complainant.phone  # the contract keeps it in E.164
    return {
        "adapter_id": ticket.source.adapter_id,
        "status": ticket.lifecycle.status.value,
        "national_registration_no": ticket.national_registration_no,
        "source_ticket_no": ticket.source.source_ticket_no,
        "respondent_uscc": ticket.respondent.uscc,
        "respondent_name": ticket.respondent.name,
        "complainant_phone_hash": hash_phone(phone, phone_key, normalized=True) if phone else None,
        "held": "review" if ticket.held_for_review() else None,
    }


def query_index_values(query: TicketQuery, phone_key: bytes) -> dict[str, str]:
    """The indexes a query asks to match exactly, by name (in TICKET_INDEXES order), with the value each must have.

    Only the fields the query gives; the phone, in whatever form it was written, as its keyed hash."""
    given = {
        "adapter_id": query.adapter_id,
        "status": query.status,
        "national_registration_no": query.national_registration_no,
        "source_ticket_no": query.source_ticket_no,
        "respondent_uscc": query.respondent_uscc,
        "respondent_name": query.respondent_name,
        "complainant_phone_hash": (
            hash_phone(query.complainant_phone, phone_key) if query.complainant_phone else None
        ),
        "held": query.held,
    }
    return {name: value for name, value in given.items() if value is not None}


def link_keys(marks: Sequence[str], key: bytes) -> list[str]:
    """The index keys of link marks (complainant|respondent): HMAC-SHA256 under the phone hash key, hex, so the
    index holds no phone or ID number; the same mark hashes alike in every process sharing the key."""
    return [digest.hex() for digest in _link_digests(marks, key)]


def link_numbers(marks: Sequence[str], key: bytes) -> list[int]:
    """The link keys as SQLite indexes them: the first 8 bytes of each digest, a signed 64-bit integer (the first
    16 hex digits of `link_keys`, big-endian). A number two marks share by chance only adds a candidate, which the
    score's comparison of the marks themselves leaves unlinked."""
    return [int.from_bytes(digest[:8], "big", signed=True) for digest in _link_digests(marks, key)]


def _link_digests(marks: Sequence[str], key: bytes) -> list[bytes]:
    keyed = _keyed_link_hmac(key)
    digests = []
    for mark in dict.fromkeys(marks):
        h = keyed.copy()
        h.update(mark.encode("utf-8"))
        digests.append(h.digest())
    return digests


@functools.lru_cache(maxsize=4)
def _keyed_link_hmac(key: bytes) -> hmac.HMAC:
    """HMAC-SHA256 under `key` having read the marks' prefix: each mark's digest continues a copy of it (less than
    half the time of a new HMAC, which hashes the key's pads again; intake hashes four marks per ticket)."""
    return hmac.new(key, b"link\x1f", hashlib.sha256)


def next_due_on(ticket: Ticket) -> date | None:
    """The earliest due day of the ticket's running time limits; None when none runs (what deadline risk is read by)."""
    return min((d.due_on for d in ticket.routing.deadlines if d.running), default=None)


@dataclass(frozen=True)
class EndedLimit:
    """One ended time limit of a ticket, as the on-time counts keep it."""

    ended_on: date
    handler_org_code: str
    handler_org_name: str
    kind: str
    outcome: str  # met | missed


def ended_limits(ticket: Ticket) -> list[EndedLimit]:
    """The ticket's time limits that ended, met or missed, under its handling organisation."""
    routing = ticket.routing
    return [EndedLimit(d.ended_on, routing.handler_org_code or "", routing.handler_org_name or "", d.kind, d.outcome)
            for d in routing.deadlines if d.outcome is not None and d.ended_on is not None]
