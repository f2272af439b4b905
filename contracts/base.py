"""Shared building blocks of the national contract: the strict base model and value types."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta, timezone
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")

# The policy for control characters in text (docs/integrators.md): refused, never stripped — a NUL or an escape
# sequence in a complaint is either an encoding fault the sender must see or an attack on whoever displays it.
# Tab, line feed and carriage return are text; every other C0 control, DEL and the C1 controls are not.
CONTROL_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
CONTROL_CHARACTER_RULE = "control_character"


def control_character_message(text: str) -> str | None:
    """Why `text` is refused (naming the first control character it holds), or None when it holds none."""
    found = CONTROL_CHARACTER.search(text)
    if found is None:
        return None
    return (f"text holds the control character U+{ord(found.group()):04X} at position {found.start()}; control "
            "characters other than tab and line breaks are not accepted")


def control_characters(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, message) for every string in a JSON-like value (dicts, lists, text) that holds a control character;
    paths are dotted keys with [n] for list items, as a mapping spec writes them."""
    if isinstance(value, str):
        message = control_character_message(value)
        if message is not None:
            yield path or "(payload)", message
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from control_characters(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from control_characters(item, f"{path}[{n}]")


def holds_control_characters(value: Any) -> bool:
    """Whether any string in a JSON-like value holds a control character: what `control_characters` answers in
    detail, asked first because nearly every payload holds none (one search over its texts joined, no paths)."""
    texts: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            texts.append(item)
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return CONTROL_CHARACTER.search("".join(texts)) is not None


def no_control_characters(text: str | None) -> str | None:
    """A field validator's check: the text as it is, or an error of rule `control_character` naming the character."""
    if text is not None:
        message = control_character_message(text)
        if message is not None:
            raise PydanticCustomError(CONTROL_CHARACTER_RULE, message)
    return text

# Money in CNY: never negative, at most two decimal places (分).
Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]


class ContractModel(BaseModel):
    """Base of every contract model: unknown fields are an error, text is trimmed."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        validate_assignment=True,
        use_enum_values=False,
        allow_inf_nan=False,  # 1e999 in JSON reads as inf: a value no ticket holds and no JSON answer can carry
    )
