"""Transforms a mapping spec can apply to a value: each is built once from its YAML and then only runs."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from contracts.codetables import CodeTables, Crosswalk, CrosswalkOutcome
from contracts.identifiers import (
    IdentifierError,
    classify_enterprise_code,
    lookup_region,
    normalize_phone,
    normalize_resident_id,
    region_by_name,
    validate_uscc,
)

# A note is something a step wants the user to know without failing: (rule, message, value).
Note = tuple[str, str, Any]
Step = Callable[[Any, list[Note]], Any]
Pipeline = tuple[tuple[Step, bool], ...]  # each step with whether it takes a list whole


class StepError(Exception):
    """A value a step cannot turn into what the target needs; becomes one FieldError."""

    def __init__(self, rule: str, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.value = value


class SpecProblem(Exception):
    """A transform written wrongly in a spec; `at` is the key path below the transform, if any."""

    def __init__(self, message: str, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.at = at


@dataclass(frozen=True)
class StepContext:
    """What building a step may consult: the spec's zone, its crosswalks and the national tables."""

    zone: tzinfo
    crosswalks: Mapping[str, Crosswalk]
    tables: CodeTables
    # Steps a spec declares in `steps:` so several fields can share one pipeline by name.
    named: Mapping[str, Pipeline] = field(default_factory=dict)


_EMPTIABLE = (str, list, dict)


def is_absent(value: Any) -> bool:
    """Nothing usable: None, empty text, an empty list or object. Zero and False are values."""
    return value is None or (isinstance(value, str | list | dict) and not value)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", bool: "true/false"}.get(type(value), type(value).__name__)


def _text_of(value: Any, rule: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise StepError(rule, f"expected text, got {_kind(value)}", value)


# ---------------------------------------------------------------------------------------------------
# Text


_SPACES = re.compile(r"[^\S\n]+")  # horizontal white space, including U+3000 ideographic space
_ALL_SPACES = re.compile(r"\s+")
_BLANK_LINES = re.compile(r"\n\s*\n+")


def _trim(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def trim(value: Any, notes: list[Note]) -> Any:
        return value.strip() if isinstance(value, str) else _scalar(value, "invalid_text")

    return trim


def _scalar(value: Any, rule: str) -> Any:
    if isinstance(value, dict | list):
        raise StepError(rule, f"expected text, got {_kind(value)}", value)
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
        return _text_of(value, "invalid_text")

    return text


def _truncate(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, int) or isinstance(arg, bool) or arg < 1:
        raise SpecProblem("truncate takes the largest number of characters to keep, e.g. truncate: 4000")
    limit = arg

    def truncate(value: Any, notes: list[Note]) -> Any:
        text = _text_of(value, "invalid_text")
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
        match = pattern.search(_text_of(value, "invalid_text"))
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
        parts = [part.strip() for part in _text_of(value, "invalid_text").split(separator)]
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
        texts = [_text_of(item, "invalid_text") for item in items if not is_absent(item)]
        return separator.join(texts)

    return join


def _first(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def first(value: Any, notes: list[Note]) -> Any:
        if isinstance(value, list):
            return next((item for item in value if not is_absent(item)), None)
        return value

    return first


# ---------------------------------------------------------------------------------------------------
# Numbers and money


def _number_text(value: Any, rule: str) -> str:
    if isinstance(value, bool | dict | list):
        raise StepError(rule, f"expected a number, got {_kind(value)}", value)
    if isinstance(value, float):
        return repr(value)
    return unicodedata.normalize("NFKC", _text_of(value, rule)).strip()


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


# ---------------------------------------------------------------------------------------------------
# Dates and times

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
        raise StepError("invalid_datetime", f"expected a date and time, got {_kind(value)}", value)

    return format_datetime


# ---------------------------------------------------------------------------------------------------
# Identifiers (the rules live in contracts.identifiers; a step only reports them with the source path)


def _identifier(check: Callable[[str], str], rule: str) -> Callable[[Any, dict[str, Any], StepContext], Step]:
    def build(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
        def run(value: Any, notes: list[Note]) -> Any:
            try:
                return check(_text_of(value, rule))
            except IdentifierError as err:
                raise StepError(rule, err.reason, value) from None

        return run

    return build


_ENTERPRISE_KINDS = ("uscc", "registration_no", "org_code")


def _enterprise_code(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    """One field that may hold a USCC, an old 注册号, an 组织机构代码 or "无": keep only the kind asked for."""
    if arg not in _ENTERPRISE_KINDS:
        raise SpecProblem(f"enterprise_code takes the kind to keep: one of {', '.join(_ENTERPRISE_KINDS)}")
    wanted = arg

    def enterprise_code(value: Any, notes: list[Note]) -> Any:
        try:
            code = classify_enterprise_code(_text_of(value, "invalid_enterprise_code"))
        except IdentifierError as err:
            raise StepError(f"invalid_{err.kind}", err.reason, value) from None
        return code.value if code is not None and code.kind == wanted else None

    return enterprise_code


def _region_code(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def region_code(value: Any, notes: list[Note]) -> Any:
        try:
            return lookup_region(_text_of(value, "invalid_region_code")).code
        except IdentifierError as err:
            raise StepError("invalid_region_code", err.reason, value) from None

    return region_code


def _region_by_name(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    within = options.get("within", arg)
    if within is not None:
        if not isinstance(within, str):
            raise SpecProblem("within is a region code or name in quotes, e.g. within: '522600'")
        try:
            scope = lookup_region(within) if within.isdigit() else region_by_name(within)
        except IdentifierError as err:
            raise SpecProblem(f"within: {err.reason}") from None
        within = scope.code

    def to_region(value: Any, notes: list[Note]) -> Any:
        try:
            return region_by_name(_text_of(value, "invalid_region_name"), within).code
        except IdentifierError as err:
            raise StepError("invalid_region_name", err.reason, value) from None

    return to_region


# ---------------------------------------------------------------------------------------------------
# Codes


def _key(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return None


_UNMAPPED_MAP = ("error", "drop", "keep")


def _map(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    """A small inline table of values (男 → '1'); a code list that changes belongs in a crosswalk file."""
    if not isinstance(arg, dict) or not arg:
        raise SpecProblem("map takes a mapping of partner values to values, e.g. map: {男: '1', 女: '2'}")
    table: dict[str, Any] = {}
    for key, mapped in arg.items():
        text = _key(key)
        if text is None:
            raise SpecProblem(f"map key {key!r} must be text or a number", (str(key),))
        table[text] = mapped
    has_default = "default" in options
    default = options.get("default")
    unmapped = options.get("unmapped", "error")
    if unmapped not in _UNMAPPED_MAP:
        raise SpecProblem(f"unmapped must be one of {', '.join(_UNMAPPED_MAP)}", ("unmapped",))
    if has_default and "unmapped" in options:
        raise SpecProblem("give either default (use it for unknown values) or unmapped, not both", ("default",))
    known = ", ".join(table)

    def map_value(value: Any, notes: list[Note]) -> Any:
        key = _key(value)
        if key is not None and key in table:
            return table[key]
        if has_default:
            return default
        if unmapped == "drop":
            return None
        if unmapped == "keep":
            return value
        raise StepError("unmapped_value", f"{value!r} is not one of the known values ({known})", value)

    return map_value


def _lookup(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str) or arg not in ctx.crosswalks:
        known = ", ".join(sorted(ctx.crosswalks)) or "none (add files under crosswalks/<source_system>/)"
        raise SpecProblem(f"unknown crosswalk {arg!r}; this spec's crosswalks: {known}")
    crosswalk = ctx.crosswalks[arg]
    # The mapped case is a plain dict look-up; the crosswalk itself decides (and words) the unmapped rule.
    codes = {entry.partner_code: entry.code for entry in crosswalk.entries}

    def lookup(value: Any, notes: list[Note]) -> Any:
        key = _key(value) if not isinstance(value, bool) else None
        if key is not None and key in codes:
            return codes[key]
        result = crosswalk.lookup(value)
        if result.outcome is CrosswalkOutcome.MAPPED:
            return result.code
        if result.outcome is CrosswalkOutcome.DEFAULTED:
            notes.append(("unmapped_defaulted", result.message, value))
            return result.code
        if result.outcome is CrosswalkOutcome.KEPT:
            notes.append(("unmapped_kept", result.message, value))
            return None
        raise StepError("unmapped_code", result.message, value)

    return lookup


def _code(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str) or arg not in ctx.tables:
        raise SpecProblem(f"unknown code table {arg!r}; known: {', '.join(ctx.tables)}")
    table = ctx.tables[arg]

    def code(value: Any, notes: list[Note]) -> Any:
        key = _key(value)
        if key is None or key not in table:
            raise StepError("unknown_code", f"{value!r} is not a code of table {table.table}", value)
        return key

    return code


def _named(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str) or arg not in ctx.named:
        raise SpecProblem(f"no pipeline {arg!r} under steps:; known: {', '.join(ctx.named) or 'none'}")
    pipeline = ctx.named[arg]

    def use(value: Any, notes: list[Note]) -> Any:
        return run_steps(pipeline, value, notes)

    return use


# ---------------------------------------------------------------------------------------------------
# Registry


@dataclass(frozen=True)
class StepKind:
    build: Callable[[Any, dict[str, Any], StepContext], Step]
    options: frozenset[str] = frozenset()
    takes_argument: bool = False  # `name: argument` is required
    whole_list: bool = False  # works on a list as a whole instead of on each item
    summary: str = ""


STEP_KINDS: dict[str, StepKind] = {
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
    "decimal": StepKind(_decimal, summary="a decimal number (1,234.5)"),
    "int": StepKind(_int, summary="a whole number"),
    "float": StepKind(_float, summary="a floating-point number (coordinates)"),
    "money": StepKind(_money, summary="an amount in CNY: 1,200.50 / 1200.5元 / ￥8,750.00 / 3.2万元"),
    "datetime": StepKind(_datetime, frozenset({"zone", "end_of_day"}),
                         summary="a date and time by the listed formats, in the spec's zone unless stated"),
    "date": StepKind(_date, frozenset({"zone"}), summary="a calendar date by the listed formats"),
    "format_datetime": StepKind(_format_datetime, frozenset({"zone"}), takes_argument=True,
                                summary="a date and time written with a strftime pattern (reverse maps)"),
    "phone": StepKind(_identifier(normalize_phone, "invalid_phone"), summary="a phone number in E.164"),
    "resident_id": StepKind(_identifier(normalize_resident_id, "invalid_resident_id"),
                            summary="an 18-character ID number (15-digit ones upgraded)"),
    "uscc": StepKind(_identifier(validate_uscc, "invalid_uscc"), summary="a checked unified social credit code"),
    "enterprise_code": StepKind(_enterprise_code, takes_argument=True,
                                summary="keep a USCC / 注册号 / 组织机构代码 of the kind named; 无 is absent"),
    "region_code": StepKind(_region_code, summary="a checked GB/T 2260 region code"),
    "region_by_name": StepKind(_region_by_name, frozenset({"within"}),
                               summary="a region name (凯里市, 镇远) to its code, within a region"),
    "map": StepKind(_map, frozenset({"unmapped", "default"}), takes_argument=True,
                    summary="an inline table of values; unmapped: error | drop | keep, or a default"),
    "lookup": StepKind(_lookup, takes_argument=True, summary="a crosswalk of this partner's codes to national codes"),
    "code": StepKind(_code, takes_argument=True, summary="require a code of a national code table"),
    "use": StepKind(_named, takes_argument=True, summary="a pipeline declared under steps:"),
}


def build_step(item: Any, ctx: StepContext) -> tuple[Step, bool]:
    """One transform from its YAML form: `name`, or `{name: argument, option: value, ...}`.

    Returns the step and whether it works on a whole list."""
    arg: Any
    options: dict[str, Any]
    if isinstance(item, str):
        name, arg, options = item, None, {}
    elif isinstance(item, dict) and item:
        name, arg = next(iter(item.items()))
        options = {key: value for key, value in item.items() if key != name}
    else:
        raise SpecProblem("a transform is a name (trim) or a mapping (truncate: 4000)")
    if not isinstance(name, str) or name not in STEP_KINDS:
        raise SpecProblem(f"unknown transform {name!r}; known: {', '.join(STEP_KINDS)}")
    kind = STEP_KINDS[name]
    if not kind.takes_argument and isinstance(arg, dict) and not options:
        arg, options = None, dict(arg)  # {fold: {lines: true}}: options under the name
    if kind.takes_argument and arg is None:
        raise SpecProblem(f"{name} needs an argument ({kind.summary})", (name,))
    for option in options:
        if option not in kind.options:
            allowed = ", ".join(sorted(kind.options)) or "none"
            raise SpecProblem(f"transform {name} has no option {option!r} (options: {allowed})", (str(option),))
    try:
        step = kind.build(arg, options, ctx)
    except SpecProblem as problem:
        raise SpecProblem(problem.message, (name, *problem.at) if not problem.at else problem.at) from None
    return step, kind.whole_list


def chain_steps(built: list[tuple[Step, bool]]) -> Pipeline:
    """The steps of one pipeline, each marked with whether it takes a list whole (join, first)."""
    return tuple(built)


# Anything a step meets in hostile input turns into a StepError, never an exception that escapes.
_STEP_FAILURES = (ValueError, TypeError, ArithmeticError, OverflowError, OSError, IndexError, KeyError, RecursionError)


def run_steps(pipeline: Pipeline, value: Any, notes: list[Note]) -> Any:
    """Run a pipeline; a list value goes item by item through item-wise steps, dropping what becomes empty.
    The pipeline stops at the first step that leaves nothing."""
    for step, whole_list in pipeline:
        if value is None or (type(value) in _EMPTIABLE and not value):  # is_absent, inlined on the hot path
            return None
        try:
            if whole_list or not isinstance(value, list):
                value = step(value, notes)
            else:
                results = [step(item, notes) for item in value if not is_absent(item)]
                value = [item for item in results if not is_absent(item)]
        except StepError:
            raise
        except _STEP_FAILURES as err:
            raise StepError("invalid_value", f"cannot transform {_kind(value)}: {err}", value) from None
    return None if is_absent(value) else value
