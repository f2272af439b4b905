"""Structured JSON logs, one event per line, with personal data masked in every line."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

# Personal data that can appear in any message: mobile and landline numbers, ID numbers.
_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8,11}([0-9Xx])(?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<!\d)(\+?86[- ]?)?(1[3-9]\d|0\d{2,3}[- ]?)\d{4}(\d{3,4})(?!\d)")
PERSONAL_FIELDS = frozenset({
    "name", "phone", "address", "id_number", "contact_name", "contact_phone",
    # partners' own keys for the same data, should a payload's fields ever reach a log line
    "id_card", "idcard", "mobile", "mobilephone", "telephone", "visitorname", "contactname", "contactphone",
    "contactaddress", "contactidcard",
})


def mask_text(text: str) -> str:
    """Mask ID and phone numbers inside free text, keeping enough to tell numbers apart."""
    text = _RESIDENT_ID.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    return _PHONE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(3)}", text)


def mask_value(key: str, value: Any) -> Any:
    """Mask a structured field when its name says it is personal; mask numbers in any text."""
    if isinstance(value, dict):
        return {k: mask_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(key, v) for v in value]
    if not isinstance(value, str):
        return value
    if key.lower() in PERSONAL_FIELDS or key.lower().endswith(("_name", "_phone", "_address")):
        return value[:1] + "*" * max(len(value) - 1, 2) if value else value
    return mask_text(value)


_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event, ticket_id/adapter_id and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "event": mask_text(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                entry[key] = mask_value(key, value)
        if record.exc_info:
            entry["exception"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Send every log line of the process to stderr through the masking formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter() if json_lines else logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
