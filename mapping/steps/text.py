"""Text steps: trimming, folding white space, case, truncating, extracting, splitting and joining."""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime
from typing import Any

from mapping.steps.pipeline import (
    Note,
    SpecProblem,
    Step,
    StepContext,
    StepError,
    StepKind,
    is_absent,
    kind_of,
    text_of,
)

_SPACES = re.compile(r"[^\S\n]+")  # horizontal white space, including U+3000 ideographic space
_ALL_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def _trim(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def trim(value: Any, notes: list[Note]) -> Any:
        return value.strip() if isinstance(value, str) else _scalar(value, "invalid_text")

    return trim


def _scalar(value: Any, rule: str) -> Any:
    if isinstance(value, dict | list):
        raise StepError(rule, f"expected text, got {kind_of(value)}", value)
    return value


def _fold(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    keep_lines = bool(options.get("lines", False))

    def fold(value: Any, notes: list[Note]) -> Any:
        if not isinstance(value, str):
            return _scalar(value, "invalid_text")
        if keep_lines:
            lines = (_SPACES.sub(" ", line).strip() for line in value.replace("\r\n", "\n").split("\n"))
            return _BLANK_LINES.sub("\n", "\n".join(lines)).strip()
        return _ALL_SPACES.sub(" ", value).strip()

    return fold


def _nfkc(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def nfkc(value: Any, notes: list[Note]) -> Any:
        return unicodedata.normalize("NFKC", value) if isinstance(value, str) else _scalar(value, "invalid_text")

    return nfkc


def _upper(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def upper(value: Any, notes: list[Note]) -> Any:
        return value.upper() if isinstance(value, str) else _scalar(value, "invalid_text")

    return upper


def _lower(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def lower(value: Any, notes: list[Note]) -> Any:
        return value.lower() if isinstance(value, str) else _scalar(value, "invalid_text")

    return lower


def _text(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def text(value: Any, notes: list[Note]) -> Any:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float):
            return repr(value).removesuffix(".0")
        if isinstance(value, datetime | date):
            return value.isoformat()
        return text_of(value, "invalid_text")

    return text


def _truncate(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 1:
        raise SpecProblem("truncate takes the largest number of characters to keep, e.g. truncate: 4000")
    limit = arg

    def truncate(value: Any, notes: list[Note]) -> Any:
        text = text_of(value, "invalid_text")
        if len(text) <= limit:
            return text
        notes.append(("truncated", f"cut from {len(text)} to {limit} characters", None))
        return text[:limit]

    return truncate


def _extract(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str):
        raise SpecProblem("extract takes a regular expression, e.g. extract: '^(\\d{6})'")
    try:
        pattern = re.compile(arg)
    except re.error as err:
        raise SpecProblem(f"extract: not a regular expression: {err}") from None
    group = 1 if pattern.groups else 0

    def extract(value: Any, notes: list[Note]) -> Any:
        match = pattern.search(text_of(value, "invalid_text"))
        return match.group(group) if match else None

    return extract


def _split(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str) or not arg:
        raise SpecProblem("split takes the separator, e.g. split: '_'")
    separator = arg
    index = options.get("index")
    levels = options.get("levels")
    if index is not None and (not isinstance(index, int) or isinstance(index, bool)):
        raise SpecProblem("index must be a whole number (0 is the first part, -1 the last)", ("index",))
    if levels is not None and (not isinstance(levels, int) or isinstance(levels, bool) or levels < 1):
        raise SpecProblem("levels must be a positive whole number", ("levels",))

    def split(value: Any, notes: list[Note]) -> Any:
        parts = [part.strip() for part in text_of(value, "invalid_text").split(separator)]
        if levels is not None and len(parts) != levels:
            raise StepError(
                "category_levels", f"expected {levels} parts separated by {separator!r}, got {len(parts)}", value
            )
        if index is None:
            return parts
        return parts[index] if -len(parts) <= index < len(parts) else None

    return split


def _join(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str):
        raise SpecProblem("join takes the separator, e.g. join: '；'")
    separator = arg

    def join(value: Any, notes: list[Note]) -> Any:
        items = value if isinstance(value, list) else [value]
        texts = [text_of(item, "invalid_text") for item in items if not is_absent(item)]
        return separator.join(texts)

    return join


def _first(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def first(value: Any, notes: list[Note]) -> Any:
        if isinstance(value, list):
            return next((item for item in value if not is_absent(item)), None)
        return value

    return first


TEXT_STEPS: dict[str, StepKind] = {
    "trim": StepKind(_trim, summary="strip leading and trailing white space"),
    "fold": StepKind(_fold, frozenset({"lines"}),
                     summary="fold runs of white space to one space (lines: keep line breaks)"),
    "nfkc": StepKind(_nfkc, summary="Unicode NFKC: full-width digits and letters to ASCII"),
    "upper": StepKind(_upper, summary="upper case"),
    "lower": StepKind(_lower, summary="lower case"),
    "text": StepKind(_text, summary="a number or date as text"),
    "truncate": StepKind(_truncate, takes_argument=True, summary="cut to N characters, with a warning"),
    "extract": StepKind(_extract, takes_argument=True, summary="the first group of a regular expression"),
    "split": StepKind(_split, frozenset({"index", "levels"}), takes_argument=True,
                      summary="split on a separator (index: keep one part; levels: require that many)"),
    "join": StepKind(_join, takes_argument=True, whole_list=True, summary="join a list with a separator"),
    "first": StepKind(_first, whole_list=True, summary="the first non-empty item of a list"),
}
