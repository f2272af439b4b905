"""Number steps: decimals, whole and floating-point numbers, and amounts of money as partners write them."""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation
from typing import Any

from mapping.steps.pipeline import Note, Step, StepContext, StepError, StepKind, kind_of, text_of


def _number_text(value: Any, rule: str) -> str:
    if isinstance(value, bool | dict | list):
        raise StepError(rule, f"expected a number, got {kind_of(value)}", value)
    if isinstance(value, float):
        return repr(value)
    return unicodedata.normalize("NFKC", text_of(value, rule)).strip()


def _decimal_of(text: str, rule: str, original: Any) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise StepError(rule, f"{text!r} is not a number", original) from None
    if not number.is_finite():
        raise StepError(rule, f"{text!r} is not a finite number", original)
    return number


def _decimal(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def to_decimal(value: Any, notes: list[Note]) -> Any:
        return _decimal_of(_number_text(value, "invalid_number").replace(",", ""), "invalid_number", value)

    return to_decimal


def _int(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def to_int(value: Any, notes: list[Note]) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _decimal_of(_number_text(value, "invalid_number"), "invalid_number", value)
        if number != number.to_integral_value():
            raise StepError("invalid_number", f"{value!r} is not a whole number", value)
        return int(number)

    return to_int


def _float(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def to_float(value: Any, notes: list[Note]) -> Any:
        if isinstance(value, float):
            return value
        return float(_decimal_of(_number_text(value, "invalid_number"), "invalid_number", value))

    return to_float


_MONEY_NOISE = re.compile(r"^(?:人民币|RMB|CNY|¥)\s*|\s*(?:元整|元|RMB|CNY)$", re.IGNORECASE)
_GROUPED = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_PLAIN = re.compile(r"^-?\d+(?:\.\d+)?$")


def _money(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    """Amounts in CNY as partners write them: 1,200.50 / 1200.5元 / ￥8,750.00 / 3.2万元."""

    def money(value: Any, notes: list[Note]) -> Any:
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return Decimal(value)
        if isinstance(value, float):
            return _decimal_of(repr(value), "invalid_money", value)
        text = _number_text(value, "invalid_money").replace(" ", "")
        previous = None
        while previous != text:  # currency words can come on both sides: 人民币1,200元
            previous, text = text, _MONEY_NOISE.sub("", text)
        scale = Decimal(1)
        if text.endswith("万"):
            text, scale = text[:-1], Decimal(10000)
        if _GROUPED.match(text):
            text = text.replace(",", "")
        if not _PLAIN.match(text):
            raise StepError("invalid_money", f"{value!r} is not an amount of money such as 1,200.50 or 1200.5元", value)
        return _decimal_of(text, "invalid_money", value) * scale

    return money


NUMBER_STEPS: dict[str, StepKind] = {
    "decimal": StepKind(_decimal, summary="a decimal number (1,234.5)"),
    "int": StepKind(_int, summary="a whole number"),
    "float": StepKind(_float, summary="a floating-point number (coordinates)"),
    "money": StepKind(_money, summary="an amount in CNY: 1,200.50 / 1200.5元 / ￥8,750.00 / 3.2万元"),
}
