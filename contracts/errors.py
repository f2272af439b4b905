"""Contract errors: the layer's exception root, and field errors as values a user can act on."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ValidationError, field_validator


class ContractError(ValueError):
    """Root of every exception the contracts layer raises; a ValueError, so `except ValueError` still holds."""


class FieldError(BaseModel):
    """One broken rule: the field (dotted path), the rule's name, a sentence (English, for logs), and the offending
    value; `message_zh` says it in Chinese for the partner or operator reading it."""

    field: str
    rule: str
    message: str
    value: Any = None
    source_path: str | None = None

    @field_validator("value")
    @classmethod
    def _answerable(cls, value: Any) -> Any:
        """The value as a JSON answer can carry it: an overflowed number (`1e999` read as inf) or a NaN as its
        text, so that the answer naming the error never fails on the error's own value."""
        if isinstance(value, float) and not math.isfinite(value):
            return repr(value)
        if isinstance(value, Decimal) and not value.is_finite():
            return str(value)
        return value

    @property
    def message_zh(self) -> str:
        from contracts.error_words import chinese_message

        return chinese_message(self.field, self.rule, self.message)

    def reader_json(self) -> dict[str, Any]:
        """As a partner or operator reads it: `message` in Chinese, `message_en` in English, the rule's code."""
        return {"field": self.field, "rule": self.rule, "message": self.message_zh, "message_en": self.message,
                "value": self.value, "source_path": self.source_path}


def _dotted(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + item)
    return "".join(parts) or "(ticket)"


def field_errors(error: ValidationError) -> list[FieldError]:
    """Flatten a pydantic ValidationError into FieldErrors; cross-field legal rules keep their own field."""
    found: list[FieldError] = []
    for detail in error.errors(include_url=False):
        ctx = detail.get("ctx") or {}
        violations = ctx.get("violations")
        prefix = _dotted(tuple(detail["loc"]))
        if violations:
            for field, rule, message in violations:
                full = field if prefix == "(ticket)" else f"{prefix}.{field}"
                found.append(FieldError(field=full, rule=rule, message=message))
            continue
        value = detail.get("input")
        found.append(
            FieldError(
                field=prefix,
                rule=detail["type"],
                message=detail["msg"],
                value=value if isinstance(value, str | int | float | bool) or value is None else None,
            )
        )
    return found
