"""Log lines, JSON (one event per line) or plain text, with personal data masked in every line of either."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from gateway.errors import StartupRefused

# Personal data that can appear in any message: mobile and landline numbers, ID numbers.
_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8,11}([0-9Xx])(?![0-9A-Za-z])")
_PHONE = re.compile(r"(?<!\d)(\+?86[- ]?)?(1[3-9]\d|0\d{2,3}[- ]?)\d{4}(\d{3,4})(?!\d)")
PERSONAL_FIELDS = frozenset({
    "name", "phone", "address", "id_number", "contact_name", "contact_phone",
    # partners' own keys for the same data, should a payload's fields ever reach a log line
    "id_card", "idcard", "mobile", "mobilephone", "telephone", "visitorname", "contactname", "contactphone",
    "contactaddress", "contactidcard",
})


_EMAIL = re.compile(r"(?<![\w.+-])([\w.+-])[\w.+-]*@([\w-]+(?:\.[\w-]+)+)")


def _personal_key(key: str) -> bool:
    lowered = key.lower()
    return lowered in PERSONAL_FIELDS or lowered.endswith(("_name", "_phone", "_address"))


# A personal field written into free text, as a dict's repr, a JSON fragment, a pydantic error or `key=value`
# shows it: `'visitorname': '张桂芬'`, `"contactName":"张桂芬"`, `contact_address=凯里市…`.
_KEYED_VALUE = re.compile(
    r"""(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?P<q1>['"]?)(?P<sep>\s*[:=]\s*)"""
    r"""(?:(?P<q2>['"])(?P<quoted>[^'"\n]*)(?P=q2)|(?P<bare>[^\s,;'"}\]\)]+))""")


def _mask_keyed(match: re.Match[str]) -> str:
    if not _personal_key(match["key"]):
        return match[0]
    value = match["quoted"] if match["quoted"] is not None else match["bare"]
    masked = value[:1] + "*" * max(len(value) - 1, 2) if value else value
    quote = match["q2"] or ""
    return f"{match['key']}{match['q1']}{match['sep']}{quote}{masked}{quote}"


# What every pattern above needs to match at least once: a `:` or `=` (a keyed value), an `@` (an e-mail address)
# or seven digits in a row (a phone or ID number). Text without any is left as it is, unsearched: most of a log
# line's values (ids, codes, the message) are such text, and one search is cheaper than four substitutions.
_MAYBE_PERSONAL = re.compile(r"[:=@]|\d{7}")


def mask_text(text: str) -> str:
    """Mask personal data inside free text: ID and phone numbers (keeping enough to tell them apart), e-mail
    addresses, and the value of any personal field written as `key: value` or `key=value`."""
    if _MAYBE_PERSONAL.search(text) is None:
        return text
    text = _KEYED_VALUE.sub(_mask_keyed, text)
    text = _RESIDENT_ID.sub(lambda m: f"{m.group(1)}********{m.group(2)}", text)
    text = _EMAIL.sub(lambda m: f"{m.group(1)}***@{m.group(2)}", text)
    return _PHONE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(3)}", text)


def mask_value(key: str, value: Any) -> Any:
    """Mask a structured field when its name says it is personal; mask numbers in any text."""
    if isinstance(value, dict):
        return {k: mask_value(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(key, v) for v in value]
    if not isinstance(value, str):
        return value
    if _personal_key(key):
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
        for key, value in _extras(record):
            # An extra named like a field of the line (`event`, say) must not replace the message.
            entry[key if key not in entry else f"extra_{key}"] = mask_value(key, value)
        if record.exc_info:
            entry["exception"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def _extras(record: logging.LogRecord) -> list[tuple[str, Any]]:
    return [(key, value) for key, value in record.__dict__.items() if key not in _RESERVED and not key.startswith("_")]


class MaskedTextFormatter(logging.Formatter):
    """A plain-text line (`logging.json_lines: false`): time, level, logger, the message and its extras as
    key=value, every part masked as in the JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        when = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        parts = [when, record.levelname, record.name, mask_text(record.getMessage())]
        parts += [f"{key}={json.dumps(mask_value(key, value), ensure_ascii=False, default=str)}"
                  for key, value in _extras(record)]
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + mask_text(self.formatException(record.exc_info))
        return line


def configure_logging(level: str = "INFO", json_lines: bool = True) -> None:
    """Send every log line of the process to stderr through the masking formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLineFormatter() if json_lines else MaskedTextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    server = logging.getLogger("uvicorn.error")
    server.filters[:] = [f for f in server.filters if not isinstance(f, RefusalSaid)]
    server.addFilter(RefusalSaid())


class RefusalSaid(logging.Filter):
    """Drops uvicorn's copy of a start-up refusal: the traceback of a StartupRefused, whose reason the gateway has
    already logged in one line ("the gateway cannot start"); any other start-up failure keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        return not (text.startswith("Traceback") and f"{StartupRefused.__module__}.StartupRefused: " in text)
