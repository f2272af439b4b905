"""Personal data masked in one place for every ops view: who sees a complainant's or reporter's identity, and how."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from contracts.errors import FieldError
from contracts.ticket import Ticket
from gateway.logs import mask_text, mask_value
from gateway.ops.access import Role

# Where a ticket holds a person's identity (dotted paths into its JSON form).
PERSONAL_PATHS: tuple[tuple[str, ...], ...] = (
    ("complainant", "name"),
    ("complainant", "phone"),
    ("complainant", "address"),
    ("complainant", "id_number"),
    ("complainant", "agent", "name"),
    ("complainant", "agent", "phone"),
    ("occurrence", "incident_address"),  # often the complainant's own home
)
# The last part of a field path that names personal data, in the national standard or a partner's own keys.
PERSONAL_KEYS = frozenset({
    "name", "phone", "address", "id_number", "incident_address", "contactname", "contactphone", "contactaddress",
    "contactidcard", "visitorname", "mobilephone", "idcard", "id_card", "tsfxx.xm", "tsfxx.lxdh", "tsfxx.sfzh",
})
# Identifiers and codes: never personal, and free-text masking must not mangle them.
_KEPT_KEYS = frozenset({"ticket_id", "idempotency_key", "event_id", "delivery_id", "sha256", "uri", "schema_version",
                        "uscc", "platform_uscc", "mime", "key", "notice_key", "version"})
_KEPT_SUFFIXES = ("_no", "_nos", "_code", "_id", "_at", "_on", "_type")


def must_mask(ticket: Ticket | None, role: Role) -> bool:
    """Viewers never see identities; operators not a confidential or anonymous one (举报人 is protected by law)."""
    if role is Role.ADMIN:
        return False
    if role is Role.VIEWER:
        return True
    return ticket is not None and (bool(ticket.complainant.confidential) or ticket.complainant.anonymous)


def mask_personal(key: str, value: str) -> str:
    """One personal value masked: phone and ID numbers keep a few digits to tell them apart, the rest one char."""
    if not value:
        return value
    shown = mask_text(value)
    if shown != value and not key.endswith(("name", "address")):
        return shown
    masked: str = mask_value("name", value)
    return masked


def _mask_free_text(node: Any, known: dict[str, str], key: str = "") -> Any:
    if isinstance(node, dict):
        return {k: _mask_free_text(v, known, k) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask_free_text(v, known, key) for v in node]
    if isinstance(node, str) and key not in _KEPT_KEYS and not key.endswith(_KEPT_SUFFIXES):
        for clear, masked in known.items():  # a caller's own name or address quoted in the content
            node = node.replace(clear, masked)
        return mask_text(node)
    return node


def masked_ticket_json(ticket: Ticket) -> dict[str, Any]:
    """The ticket's JSON form with every personal field masked and phone/ID numbers masked inside free text."""
    data: dict[str, Any] = ticket.model_dump(mode="json")
    known: dict[str, str] = {}
    for path in PERSONAL_PATHS:
        node: Any = data
        for part in path[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(path[-1]), str):
            clear = node[path[-1]]
            node[path[-1]] = mask_personal(path[-1], clear)
            if len(clear) >= 2:
                known[clear] = node[path[-1]]
    masked: dict[str, Any] = _mask_free_text(data, dict(sorted(known.items(), key=lambda kv: -len(kv[0]))))
    return masked


def mask_in_text(ticket: Ticket, text: str) -> str:
    """Free text of a ticket masked: its complainant's own name, address and numbers, and any phone or ID number."""
    c = ticket.complainant
    for key, clear in (("address", c.address), ("name", c.name), ("name", c.agent.name if c.agent else None)):
        if clear and len(clear) >= 2:
            text = text.replace(clear, mask_personal(key, clear))
    return mask_text(text)


def ticket_json(ticket: Ticket, role: Role) -> dict[str, Any]:
    """The ticket as `role` may see it."""
    return masked_ticket_json(ticket) if must_mask(ticket, role) else ticket.model_dump(mode="json")


def shown(ticket: Ticket | None, role: Role, key: str, value: str | None) -> str | None:
    """One personal value of a ticket as `role` may see it (for lists and pages)."""
    if value is None or not must_mask(ticket, role):
        return value
    return mask_personal(key, value)


def masked_errors(errors: Iterable[FieldError], role: Role) -> list[dict[str, Any]]:
    """Mapping errors of a quarantined payload; the offending values masked for viewers (they may be identities)."""
    found: list[dict[str, Any]] = []
    for error in errors:
        item = error.reader_json()  # Chinese first, English beside it
        if role is Role.VIEWER and isinstance(item.get("value"), str):
            last = error.field.rsplit(".", 1)[-1].lower()
            source = (error.source_path or "").lower()
            personal = last in PERSONAL_KEYS or source in PERSONAL_KEYS or last.endswith(("name", "phone", "address"))
            item["value"] = mask_personal(last, item["value"]) if personal else mask_text(item["value"])
        found.append(item)
    return found
