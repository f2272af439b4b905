"""Date and time steps: reading the formats partners send in the spec's zone, and writing them back."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Any

from mapping.steps.pipeline import Note, SpecProblem, Step, StepContext, StepError, StepKind, kind_of

DATE_ONLY_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y%m%d", "%Y年%m月%d日")
DEFAULT_DATETIME_FORMATS = (
    "iso",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y%m%d%H%M%S",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日%H时%M分",
    *DATE_ONLY_FORMATS,
)
_EPOCH_MS_FROM = 100_000_000_000  # larger numbers are milliseconds (after 1973-03-03 in ms)
_EPOCH_TEXT = re.compile(r"^\d{9,13}$")
_ZONE = re.compile(r"^([+-])(\d{2}):(\d{2})$")
_DIRECTIVE = re.compile(r"%(.)")
_FIELD_PATTERN = {"Y": r"(\d{4})", "m": r"(\d{1,2})", "d": r"(\d{1,2})", "H": r"(\d{1,2})", "M": r"(\d{1,2})",
                  "S": r"(\d{1,2})"}
Reader = Callable[[str], tuple[datetime, bool] | None]


def _literal(text: str) -> str:
    # As in strptime, white space in a pattern matches any run of white space.
    return "".join(r"\s+" if char.isspace() else re.escape(char) for char in text)


def _reader(form: str) -> Reader:
    """A parser for one strptime pattern. Patterns of %Y %m %d %H %M %S and literal text are compiled to a
    regular expression (strptime is slow and lenient: it reads 1552702800 as %Y%m%d%H%M); others use strptime.
    A pattern without separators (%Y%m%d%H%M%S) takes zero-padded fields only."""
    directives = _DIRECTIVE.findall(form)
    has_time = any(d in "HMS" for d in directives)
    if not all(d in _FIELD_PATTERN for d in directives) or len(set(directives)) != len(directives):

        def by_strptime(text: str) -> tuple[datetime, bool] | None:
            try:
                return datetime.strptime(text, form), has_time  # the caller applies the zone
            except ValueError:
                return None

        return by_strptime
    compact = _DIRECTIVE.sub("", form) == ""
    pattern, order, position = "", [], 0
    for match in _DIRECTIVE.finditer(form):
        pattern += _literal(form[position:match.start()])
        code = match.group(1)
        pattern += r"(\d{2})" if compact and code != "Y" else _FIELD_PATTERN[code]
        order.append(code)
        position = match.end()
    regex = re.compile(pattern + _literal(form[position:]))

    def by_regex(text: str) -> tuple[datetime, bool] | None:
        match = regex.fullmatch(text)
        if match is None:
            return None
        parts = dict(zip(order, map(int, match.groups()), strict=True))
        try:
            moment = datetime(parts.get("Y", 1900), parts.get("m", 1), parts.get("d", 1),
                              parts.get("H", 0), parts.get("M", 0), parts.get("S", 0))
        except ValueError:
            return None  # 2024-02-30 or 25:61: not a moment in this format
        return moment, has_time

    return by_regex


def parse_zone(text: Any) -> tzinfo:
    """'+08:00' → a fixed offset; the only form a spec uses, so a typo cannot pick a wrong zone."""
    match = _ZONE.match(text) if isinstance(text, str) else None
    if match is None:
        raise SpecProblem(f"a zone is written as an offset such as '+08:00', got {text!r}")
    sign, hours, minutes = match.groups()
    offset = timedelta(hours=int(hours), minutes=int(minutes))
    if offset > timedelta(hours=14):
        raise SpecProblem(f"zone offset {text} is larger than 14 hours")
    return timezone(-offset if sign == "-" else offset)


def _formats(arg: Any, default: tuple[str, ...]) -> tuple[tuple[str, Reader | None], ...]:
    """The listed formats, each with its compiled reader ('iso' and 'epoch' are read in _parse_moment)."""
    formats = default if arg is None else [arg] if isinstance(arg, str) else arg
    if not isinstance(formats, list | tuple) or not formats or not all(isinstance(f, str) and f for f in formats):
        raise SpecProblem("formats are a list of strptime patterns, 'iso' or 'epoch', e.g. ['%Y/%m/%d %H:%M', iso]")
    for form in formats:
        if form not in ("iso", "epoch") and "%" not in form:
            raise SpecProblem(f"{form!r} is neither a strptime pattern (with %) nor 'iso' or 'epoch'")
    return tuple((form, None if form in ("iso", "epoch") else _reader(form)) for form in formats)


def _parse_moment(value: Any, formats: tuple[tuple[str, Reader | None], ...]) -> tuple[datetime, bool] | None:
    """(datetime, had a time of day) by the first format that fits, or None."""
    if isinstance(value, datetime):
        return value, True
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    text = str(value) if numeric and isinstance(value, int) else value if isinstance(value, str) else None
    if text is not None:
        text = unicodedata.normalize("NFKC", text).strip()
    for form, read in formats:
        if read is not None:
            if text is not None and (parsed := read(text)) is not None:
                return parsed
            continue
        if form == "epoch":
            if numeric or (text is not None and _EPOCH_TEXT.match(text)):
                seconds = float(value if numeric else text)  # type: ignore[arg-type]
                if seconds >= _EPOCH_MS_FROM:
                    seconds /= 1000
                return datetime.fromtimestamp(seconds, UTC), True
            continue
        if text is None or text.isdigit():
            continue  # ISO's basic form would read 1552702800 as the year 1552
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            continue
        return moment, len(text) > 10
    return None


def _datetime(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    formats = _formats(arg, DEFAULT_DATETIME_FORMATS)
    listed = ", ".join(form for form, _ in formats)
    zone = parse_zone(options["zone"]) if "zone" in options else ctx.zone
    end_of_day = bool(options.get("end_of_day", False))

    def to_datetime(value: Any, notes: list[Note]) -> Any:
        parsed = _parse_moment(value, formats)
        if parsed is None:
            raise StepError("invalid_datetime", f"{value!r} matches none of the formats {listed}", value)
        moment, has_time = parsed
        if not has_time and end_of_day:
            moment = datetime.combine(moment.date(), time(23, 59, 59))
        if moment.tzinfo is None:
            return moment.replace(tzinfo=zone)
        return moment.astimezone(zone)

    return to_datetime


def _date(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    formats = _formats(arg, DEFAULT_DATETIME_FORMATS)
    listed = ", ".join(form for form, _ in formats)
    zone = parse_zone(options["zone"]) if "zone" in options else ctx.zone

    def to_date(value: Any, notes: list[Note]) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        parsed = _parse_moment(value, formats)
        if parsed is None:
            raise StepError("invalid_date", f"{value!r} matches none of the formats {listed}", value)
        moment = parsed[0]
        return (moment.astimezone(zone) if moment.tzinfo else moment).date()

    return to_date


def _format_datetime(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str) or "%" not in arg:
        raise SpecProblem("format_datetime takes a strftime pattern, e.g. format_datetime: '%Y-%m-%d %H:%M:%S'")
    pattern = arg
    zone = parse_zone(options["zone"]) if "zone" in options else ctx.zone

    def format_datetime(value: Any, notes: list[Note]) -> Any:
        moment = value
        if isinstance(value, str):
            moment = datetime.fromisoformat(value)
        if isinstance(moment, datetime):
            return (moment.astimezone(zone) if moment.tzinfo else moment).strftime(pattern)
        if isinstance(moment, date):
            return moment.strftime(pattern)
        raise StepError("invalid_datetime", f"expected a date and time, got {kind_of(value)}", value)

    return format_datetime


DATE_STEPS: dict[str, StepKind] = {
    "datetime": StepKind(_datetime, frozenset({"zone", "end_of_day"}),
                         summary="a date and time by the listed formats, in the spec's zone unless stated"),
    "date": StepKind(_date, frozenset({"zone"}), summary="a calendar date by the listed formats"),
    "format_datetime": StepKind(_format_datetime, frozenset({"zone"}), takes_argument=True,
                                summary="a date and time written with a strftime pattern (reverse maps)"),
}
