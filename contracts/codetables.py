"""Versioned national code tables and partner crosswalks: models, loaders and date-aware look-ups."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from importlib.resources import files
from importlib.resources.abc import Traversable
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Final, Self, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts.yamldoc import YamlDocument, YamlDocumentError, parse_yaml_document, render_key

__all__ = [
    "CodeEntry",
    "CodeTable",
    "CodeTableError",
    "CodeTableIssue",
    "CodeTables",
    "Crosswalk",
    "CrosswalkEntry",
    "CrosswalkOutcome",
    "CrosswalkResult",
    "UnmappedRule",
    "default_code_tables",
    "load_code_table",
    "load_code_tables",
    "load_crosswalk",
]

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]

# Validation context flag: the loader checks cross-entry rules itself so that each problem keeps its
# own key path (and so its line); a model built directly checks them in its model validator.
_DEFER_CROSS_CHECKS: Final = "defer_cross_checks"
_ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ---------------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class CodeTableIssue:
    """One problem in a code-table or crosswalk file: where it is and what is wrong."""

    file: str
    key: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file + (f":{self.line}" if self.line else "")
        return f"{where}: {self.key + ': ' if self.key else ''}{self.message}"


class CodeTableError(ValueError):
    """A code table or crosswalk that cannot be used: every problem found, each with file, line and key."""

    def __init__(self, issues: Sequence[CodeTableIssue]) -> None:
        if not issues:
            raise ValueError("CodeTableError needs at least one issue")
        self.issues: tuple[CodeTableIssue, ...] = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))

    @property
    def file(self) -> str:
        return self.issues[0].file

    @property
    def key(self) -> str:
        return self.issues[0].key

    @property
    def line(self) -> int | None:
        return self.issues[0].line


def _render_loc(loc: Loc) -> str:
    return render_key(loc)


def _problems_text(problems: Sequence[Problem]) -> str:
    return "; ".join(f"{_render_loc(loc)}: {message}" if loc else message for loc, message in problems)


# ---------------------------------------------------------------------------------------------------
# Field types shared by tables and crosswalks


def _quoted_text(value: object) -> object:
    # YAML reads 01 as the number 1 and 010101 as the octal 4161: a code must be written as text.
    if isinstance(value, bool | int | float):
        raise ValueError(
            f"must be quoted text (YAML read the unquoted value as the number {value!r}); "
            "write codes and versions in quotes, e.g. code: '01'"
        )
    return value


def _iso_date(value: object) -> object:
    # Pydantic alone would also take numbers (as Unix times) and datetimes; a table date is a calendar day.
    if isinstance(value, datetime):
        raise ValueError(f"must be a date written YYYY-MM-DD, not a date and time ({value.isoformat()})")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        if not _ISO_DATE.match(value):
            raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")
        try:
            return date.fromisoformat(value)
        except ValueError as err:
            raise ValueError(f"{value!r} is not a valid date: {err}") from None
    raise ValueError(f"must be a date written YYYY-MM-DD, got {type(value).__name__} {value!r}")


Code = Annotated[str, BeforeValidator(_quoted_text), StringConstraints(pattern=r"^[0-9A-Za-z_]+$")]
TableId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
Text = Annotated[str, BeforeValidator(_quoted_text), StringConstraints(strip_whitespace=True, min_length=1)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
AttrKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
AttrValue = StrictStr | StrictInt | StrictFloat | StrictBool | None


def _check_end(value: date | None, info: ValidationInfo) -> date | None:
    start = info.data.get("effective_from")
    if value is not None and isinstance(start, date) and value <= start:
        raise ValueError(
            f"effective_to {value} must be later than effective_from {start} "
            "(effective_to is the first day on which it no longer applies)"
        )
    return value


def _window_overlaps(start: date, end: date | None, other_start: date | None, other_end: date | None) -> bool:
    """Whether the half-open periods [start, end) and [other_start, other_end) share a day; None is open."""
    starts_before_other_ends = other_end is None or start < other_end
    other_starts_before_end = end is None or other_start is None or other_start < end
    return starts_before_other_ends and other_starts_before_end


# ---------------------------------------------------------------------------------------------------
# Code tables


class CodeEntry(BaseModel):
    """One code of a table; its optional dates are half-open: [effective_from, effective_to)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: Code
    label: Text
    parent: Code | None = None
    effective_from: IsoDate | None = None
    effective_to: IsoDate | None = None
    attrs: dict[AttrKey, AttrValue] = Field(default_factory=dict)

    @field_validator("effective_to")
    @classmethod
    def _ends_after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        return _check_end(value, info)

    def is_effective(self, on: date) -> bool:
        """Whether this code applies on `on` by its own dates (not the table version's)."""
        return (self.effective_from is None or self.effective_from <= on) and (
            self.effective_to is None or on < self.effective_to
        )


class CodeTable(BaseModel):
    """One version of one national code table, as one YAML file (format: contracts/codes/README.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    table: TableId
    title: Text
    version: Text
    effective_from: IsoDate
    effective_to: IsoDate | None = None
    source: Text
    hierarchical: StrictBool = False
    # Length of a code at each level (e.g. [2, 4, 6]); without it only the prefix rule is checked.
    code_lengths: tuple[PositiveInt, ...] | None = None
    codes: tuple[CodeEntry, ...] = Field(min_length=1)

    _by_code: dict[str, CodeEntry] = PrivateAttr(default_factory=dict)
    _children: dict[str | None, tuple[CodeEntry, ...]] = PrivateAttr(default_factory=dict)
    # Set when versions are assembled into CodeTables: the version before this one, and the first day
    # this version no longer applies (its effective_to, or else its successor's effective_from).
    _previous: CodeTable | None = PrivateAttr(default=None)
    _until: date | None = PrivateAttr(default=None)

    @field_validator("effective_to")
    @classmethod
    def _ends_after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        return _check_end(value, info)

    @model_validator(mode="after")
    def _check_codes(self, info: ValidationInfo) -> Self:
        if not (info.context and info.context.get(_DEFER_CROSS_CHECKS)):
            problems = _table_problems(self)
            if problems:
                raise ValueError(_problems_text(problems))
        return self

    def model_post_init(self, context: Any, /) -> None:
        by_code: dict[str, CodeEntry] = {}
        children: dict[str | None, list[CodeEntry]] = {}
        for entry in self.codes:
            by_code.setdefault(entry.code, entry)
            children.setdefault(entry.parent, []).append(entry)
        self._by_code = by_code
        self._children = {parent: tuple(entries) for parent, entries in children.items()}
        self._until = self.effective_to

    def __contains__(self, code: object) -> bool:
        """Whether `code` is a code of this version, whatever its own dates say."""
        return isinstance(code, str) and code in self._by_code

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def previous(self) -> CodeTable | None:
        """The version this one replaced, if the tables were loaded together."""
        return self._previous

    @property
    def effective_until(self) -> date | None:
        """The first day this version no longer applies (None: open-ended)."""
        return self._until

    def version_on(self, on: date) -> CodeTable | None:
        """The version (this one or an earlier one) that applies on `on`, or None if none does."""
        table: CodeTable | None = self
        while table is not None:
            if table.effective_from <= on:
                return table if table._until is None or on < table._until else None
            table = table._previous
        return None

    def get(self, code: str, on: date | None = None) -> CodeEntry | None:
        """The entry for `code` in this version; with `on`, in the version that applies that day and only if
        the code itself applies that day. Never raises."""
        if on is None:
            return self._by_code.get(code)
        table = self.version_on(on)
        entry = None if table is None else table._by_code.get(code)
        return entry if entry is not None and entry.is_effective(on) else None

    def label(self, code: str, on: date | None = None) -> str:
        """The Chinese label of `code` (see `get`); KeyError if there is no such code."""
        entry = self.get(code, on)
        if entry is None:
            when = f" on {on}" if on is not None else ""
            raise KeyError(f"{code!r} is not a code of table {self.table} (version {self.version}){when}")
        return entry.label

    def roots(self) -> tuple[CodeEntry, ...]:
        """The top-level entries in file order (every entry, for a flat table)."""
        return self._children.get(None, ())

    def children(self, code: str) -> tuple[CodeEntry, ...]:
        """The entries directly under `code`, in file order; KeyError if there is no such code."""
        self._entry(code)
        return self._children.get(code, ())

    def path(self, code: str) -> list[CodeEntry]:
        """The entries from the top level down to `code`; KeyError if there is no such code."""
        chain = [self._entry(code)]
        while (parent := chain[-1].parent) is not None:
            chain.append(self._entry(parent))
        chain.reverse()
        return chain

    def level(self, code: str) -> int:
        """1 for a top-level code, 2 for its children, and so on; KeyError if there is no such code."""
        return len(self.path(code))

    def valid_during(self, code: str, start: date, end: date | None = None) -> bool:
        """Whether `code` applies on at least one day of [start, end) in this version or an earlier one."""
        table: CodeTable | None = self
        while table is not None:
            entry = table._by_code.get(code)
            if (
                entry is not None
                and _window_overlaps(start, end, table.effective_from, table._until)
                and _window_overlaps(start, end, entry.effective_from, entry.effective_to)
            ):
                return True
            table = table._previous
        return False

    def _entry(self, code: str) -> CodeEntry:
        entry = self._by_code.get(code)
        if entry is None:
            raise KeyError(f"{code!r} is not a code of table {self.table} (version {self.version})")
        return entry


def _depth(code: str, parents: Mapping[str, str | None]) -> int | None:
    """Level of `code` by following parents; None when the chain is broken (reported elsewhere)."""
    depth, seen = 1, {code}
    while (parent := parents.get(code)) is not None:
        if parent not in parents or parent in seen:
            return None
        seen.add(parent)
        code, depth = parent, depth + 1
    return depth


def _table_problems(table: CodeTable) -> list[Problem]:
    """Rules across entries: unique codes, parents that exist and prefix their children, code lengths."""
    problems: list[Problem] = []
    first_at: dict[str, int] = {}
    for i, entry in enumerate(table.codes):
        if entry.code in first_at:
            problems.append(
                (
                    ("codes", i, "code"),
                    f"duplicate code {entry.code!r} (first at codes[{first_at[entry.code]}])",
                )
            )
        else:
            first_at[entry.code] = i
    if table.code_lengths is not None and not table.hierarchical:
        problems.append((("code_lengths",), "code_lengths applies only to a hierarchical table"))
    parents = {entry.code: entry.parent for entry in table.codes}
    lengths = table.code_lengths if table.hierarchical else None
    for i, entry in enumerate(table.codes):
        if entry.parent is not None:
            if not table.hierarchical:
                problems.append(
                    (
                        ("codes", i, "parent"),
                        f"code {entry.code!r} has a parent but the table is not hierarchical",
                    )
                )
                continue
            if entry.parent not in first_at:
                problems.append(
                    (
                        ("codes", i, "parent"),
                        f"parent {entry.parent!r} of code {entry.code!r} is not a code of this table",
                    )
                )
                continue
            if not (entry.code.startswith(entry.parent) and len(entry.code) > len(entry.parent)):
                problems.append(
                    (
                        ("codes", i, "code"),
                        f"code {entry.code!r} must begin with its parent's code {entry.parent!r}",
                    )
                )
                continue
        if lengths is None:
            continue
        depth = _depth(entry.code, parents)
        if depth is None:
            continue
        if depth > len(lengths):
            problems.append(
                (
                    ("codes", i, "parent"),
                    f"code {entry.code!r} is at level {depth} but the table has {len(lengths)}",
                )
            )
        elif len(entry.code) != lengths[depth - 1]:
            problems.append(
                (
                    ("codes", i, "code"),
                    f"code {entry.code!r} is at level {depth}, where codes have "
                    f"{lengths[depth - 1]} characters",
                )
            )
    return problems


def _version_problems(versions: Sequence[CodeTable]) -> list[tuple[int, int, Loc, str]]:
    """Rules across the versions of one table (sorted by effective_from): no shared start, no overlap.

    Each problem is (index of the version at fault, index of the version it clashes with, key, message)."""
    problems: list[tuple[int, int, Loc, str]] = []
    for i in range(1, len(versions)):
        before, after = versions[i - 1], versions[i]
        if after.effective_from == before.effective_from:
            problems.append(
                (
                    i,
                    i - 1,
                    ("effective_from",),
                    f"version {before.version} of table {after.table} also starts {after.effective_from}",
                )
            )
        elif before.effective_to is not None and before.effective_to > after.effective_from:
            problems.append(
                (
                    i,
                    i - 1,
                    ("effective_from",),
                    f"starts {after.effective_from}, but version {before.version} of table {after.table} "
                    f"applies until {before.effective_to}; versions must not overlap",
                )
            )
        if after.hierarchical != before.hierarchical:
            problems.append(
                (
                    i,
                    i - 1,
                    ("hierarchical",),
                    f"version {before.version} of table {after.table} says {before.hierarchical}",
                )
            )
    first_at: dict[str, int] = {}
    for i, table in enumerate(versions):
        if table.version in first_at:
            problems.append(
                (
                    i,
                    first_at[table.version],
                    ("version",),
                    f"table {table.table} has version {table.version} twice",
                )
            )
        first_at.setdefault(table.version, i)
    return problems


def _by_start(table: CodeTable) -> date:
    return table.effective_from


class CodeTables(Mapping[str, CodeTable]):
    """Tables by id: `tables[id]` is the newest version, whose `get(code, on=day)` also reaches older ones."""

    def __init__(self, tables: Iterable[CodeTable]) -> None:
        grouped: dict[str, list[CodeTable]] = {}
        for table in tables:
            grouped.setdefault(table.table, []).append(table.model_copy())
        issues: list[CodeTableIssue] = []
        self._versions: dict[str, tuple[CodeTable, ...]] = {}
        for table_id in sorted(grouped):
            versions = sorted(grouped[table_id], key=_by_start)
            for i, _, loc, message in _version_problems(versions):
                issues.append(
                    CodeTableIssue(
                        f"<table {table_id} version {versions[i].version}>", _render_loc(loc), message
                    )
                )
            for i, table in enumerate(versions):
                table._previous = versions[i - 1] if i else None
                successor_start = versions[i + 1].effective_from if i + 1 < len(versions) else None
                table._until = table.effective_to or successor_start
            self._versions[table_id] = tuple(versions)
        if issues:
            raise CodeTableError(issues)

    def __getitem__(self, table_id: str) -> CodeTable:
        try:
            return self._versions[table_id][-1]
        except KeyError:
            raise KeyError(f"no code table {table_id!r}; known: {', '.join(self._versions)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._versions)

    def __len__(self) -> int:
        return len(self._versions)

    def versions(self, table_id: str) -> tuple[CodeTable, ...]:
        """Every loaded version of a table, oldest first."""
        self[table_id]
        return self._versions[table_id]

    def version_on(self, table_id: str, on: date) -> CodeTable | None:
        """The version of a table that applies on `on`, or None."""
        return self[table_id].version_on(on)


# ---------------------------------------------------------------------------------------------------
# Crosswalks


class UnmappedRule(StrEnum):
    """What a crosswalk does with a partner code it has no entry for."""

    ERROR = "error"
    DEFAULT = "default"
    KEEP_AND_FLAG = "keep_and_flag"


class CrosswalkOutcome(StrEnum):
    """What a look-up came to: mapped, or which unmapped rule was applied."""

    MAPPED = "mapped"
    DEFAULTED = "defaulted"
    KEPT = "kept"
    REJECTED = "rejected"


class CrosswalkEntry(BaseModel):
    """One partner code and the national code it means."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    partner_code: Text
    partner_label: Text | None = None
    code: Code


class CrosswalkResult(BaseModel):
    """The answer to one look-up; `code` is the national code when mapped or defaulted, else None."""

    model_config = ConfigDict(frozen=True)

    crosswalk: str
    outcome: CrosswalkOutcome
    partner_code: str | None
    code: str | None = None
    rule: UnmappedRule | None = None
    message: str

    @property
    def mapped(self) -> bool:
        return self.outcome is CrosswalkOutcome.MAPPED

    @property
    def flagged(self) -> bool:
        """The partner's value is to be kept as it came and flagged for a person to review."""
        return self.outcome is CrosswalkOutcome.KEPT


class Crosswalk(BaseModel):
    """A partner's own codes for one national table; `load_crosswalk` builds it and checks the targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    crosswalk: TableId
    table: TableId
    partner: Text
    version: Text
    effective_from: IsoDate
    effective_to: IsoDate | None = None
    notes: Text | None = None
    entries: tuple[CrosswalkEntry, ...] = Field(min_length=1)
    unmapped: UnmappedRule = UnmappedRule.ERROR
    default: Code | None = None

    _by_partner: dict[str, CrosswalkEntry] = PrivateAttr(default_factory=dict)

    @field_validator("effective_to")
    @classmethod
    def _ends_after_start(cls, value: date | None, info: ValidationInfo) -> date | None:
        return _check_end(value, info)

    @model_validator(mode="after")
    def _check_entries(self, info: ValidationInfo) -> Self:
        if not (info.context and info.context.get(_DEFER_CROSS_CHECKS)):
            problems = _crosswalk_problems(self)
            if problems:
                raise ValueError(_problems_text(problems))
        return self

    def model_post_init(self, context: Any, /) -> None:
        by_partner: dict[str, CrosswalkEntry] = {}
        for entry in self.entries:
            by_partner.setdefault(entry.partner_code, entry)
        self._by_partner = by_partner

    def lookup(self, partner_code: object) -> CrosswalkResult:
        """The national code for a partner code, or what the unmapped rule says; never raises."""
        key = _partner_key(partner_code)
        entry = None if key is None else self._by_partner.get(key)
        if entry is not None:
            return CrosswalkResult(
                crosswalk=self.crosswalk,
                outcome=CrosswalkOutcome.MAPPED,
                partner_code=key,
                code=entry.code,
                message=f"{self.partner} code {key!r} is {self.table} {entry.code!r}",
            )
        shown = repr(key) if key is not None else f"(no usable code: {partner_code!r})"
        unmapped = f"{self.partner} code {shown} is not in crosswalk {self.crosswalk}"
        if self.unmapped is UnmappedRule.DEFAULT:
            return CrosswalkResult(
                crosswalk=self.crosswalk,
                outcome=CrosswalkOutcome.DEFAULTED,
                partner_code=key,
                code=self.default,
                rule=self.unmapped,
                message=f"{unmapped}; using the default {self.table} {self.default!r}",
            )
        if self.unmapped is UnmappedRule.KEEP_AND_FLAG:
            return CrosswalkResult(
                crosswalk=self.crosswalk,
                outcome=CrosswalkOutcome.KEPT,
                partner_code=key,
                rule=self.unmapped,
                message=f"{unmapped}; kept as it came and flagged for review",
            )
        return CrosswalkResult(
            crosswalk=self.crosswalk,
            outcome=CrosswalkOutcome.REJECTED,
            partner_code=key,
            rule=self.unmapped,
            message=f"{unmapped}, and unmapped codes are an error",
        )


def _partner_key(value: object) -> str | None:
    # Partners send codes as JSON numbers as often as strings, and legacy systems pad them.
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def _crosswalk_problems(crosswalk: Crosswalk) -> list[Problem]:
    problems: list[Problem] = []
    first_at: dict[str, int] = {}
    for i, entry in enumerate(crosswalk.entries):
        if entry.partner_code in first_at:
            problems.append(
                (
                    ("entries", i, "partner_code"),
                    f"partner code {entry.partner_code!r} appears twice "
                    f"(first at entries[{first_at[entry.partner_code]}])",
                )
            )
        first_at.setdefault(entry.partner_code, i)
    if crosswalk.unmapped is UnmappedRule.DEFAULT and crosswalk.default is None:
        problems.append((("default",), "unmapped: default needs a default code"))
    if crosswalk.unmapped is not UnmappedRule.DEFAULT and crosswalk.default is not None:
        problems.append(
            (("default",), f"default is used only with unmapped: default (this says {crosswalk.unmapped})")
        )
    return problems


def _crosswalk_target_problems(crosswalk: Crosswalk, tables: CodeTables) -> list[Problem]:
    if crosswalk.table not in tables:
        return [(("table",), f"no code table {crosswalk.table!r}; known: {', '.join(tables)}")]
    table = tables[crosswalk.table]
    period = f"from {crosswalk.effective_from}" + (
        f" to {crosswalk.effective_to}" if crosswalk.effective_to is not None else ""
    )
    problems: list[Problem] = []
    for i, entry in enumerate(crosswalk.entries):
        if not table.valid_during(entry.code, crosswalk.effective_from, crosswalk.effective_to):
            problems.append(
                (
                    ("entries", i, "code"),
                    f"partner code {entry.partner_code!r} maps to {entry.code!r}, "
                    f"which is not a code of table {table.table} {period}",
                )
            )
    default = crosswalk.default
    if default is not None and not table.valid_during(
        default, crosswalk.effective_from, crosswalk.effective_to
    ):
        problems.append((("default",), f"default {default!r} is not a code of table {table.table} {period}"))
    return problems


# ---------------------------------------------------------------------------------------------------
# Reading YAML with line numbers


def _issue(document: YamlDocument, loc: Loc, message: str) -> CodeTableIssue:
    return CodeTableIssue(document.file, _render_loc(loc), message, document.line_of(loc))


def _parse(text: str, file: str) -> YamlDocument:
    try:
        document, duplicates = parse_yaml_document(text, file)
    except YamlDocumentError as err:
        raise CodeTableError([CodeTableIssue(file, "", err.reason, err.line)]) from None
    if duplicates:
        raise CodeTableError([CodeTableIssue(file, _render_loc(path), message, line)
                              for path, line, message in duplicates])
    return document


def _read(source: Traversable, file: str) -> str:
    try:
        return source.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CodeTableError(
            [CodeTableIssue(file, "", f"not UTF-8 text: {err.reason} at byte {err.start}")]
        ) from None
    except OSError as err:
        raise CodeTableError([CodeTableIssue(file, "", f"cannot be read: {err.strerror or err}")]) from None


def _pydantic_message(error: Mapping[str, Any], loc: Loc) -> str:
    kind, message = error["type"], str(error["msg"])
    if kind == "extra_forbidden" and loc:
        return f"unknown key {loc[-1]!r}"
    if kind == "missing" and loc:
        return f"required key {loc[-1]!r} is missing"
    return message.removeprefix("Value error, ")


def _entry_context(document: YamlDocument, loc: Loc) -> str:
    """' (code '0101')' for a problem inside one entry of a list, to say which entry without counting."""
    if (
        len(loc) >= 2
        and loc[0] in ("codes", "entries")
        and isinstance(loc[1], int)
        and isinstance(document.data, dict)
    ):
        items = document.data.get(loc[0])
        if isinstance(items, list) and 0 <= loc[1] < len(items) and isinstance(items[loc[1]], dict):
            name = "code" if loc[0] == "codes" else "partner_code"
            value = items[loc[1]].get(name)
            if isinstance(value, str):
                return f" ({name} {value!r})"
    return ""


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], document: YamlDocument, context: dict[str, Any]) -> _M:
    if not isinstance(document.data, dict):
        raise CodeTableError(
            [_issue(document, (), f"must be a mapping of keys to values (a {model.__name__})")]
        )
    try:
        return model.model_validate(document.data, context=context)
    except ValidationError as err:
        issues = []
        for error in err.errors(include_url=False):
            loc = tuple(error["loc"])
            issues.append(_issue(document, loc, _pydantic_message(error, loc) + _entry_context(document, loc)))
        raise CodeTableError(issues) from None


def _load_table_document(document: YamlDocument) -> CodeTable:
    table = _validate(CodeTable, document, {_DEFER_CROSS_CHECKS: True})
    problems = _table_problems(table)
    if problems:
        raise CodeTableError([_issue(document, loc, message) for loc, message in problems])
    return table


# ---------------------------------------------------------------------------------------------------
# Loaders


def _shipped_directory() -> Traversable:
    return files("contracts").joinpath("codes")


def load_code_table(source: Traversable | Path, *, file: str | None = None) -> CodeTable:
    """Load and check one table version from a YAML file."""
    name = file or str(source)
    return _load_table_document(_parse(_read(source, name), name))


def load_code_tables(directory: Traversable | Path | None = None) -> CodeTables:
    """Load every *.yaml table version in `directory` (default: the shipped contracts/codes) and check them.

    Every problem in every file is reported at once, each naming its file, line and key."""
    root: Traversable = _shipped_directory() if directory is None else directory
    sources = sorted(
        (item for item in root.iterdir() if item.is_file() and item.name.endswith((".yaml", ".yml"))),
        key=lambda item: item.name,
    )
    if not sources:
        raise CodeTableError([CodeTableIssue(str(root), "", "holds no code table files (*.yaml)")])
    issues: list[CodeTableIssue] = []
    loaded: list[tuple[YamlDocument, CodeTable]] = []
    for source in sources:
        try:
            document = _parse(_read(source, str(source)), str(source))
            loaded.append((document, _load_table_document(document)))
        except CodeTableError as err:
            issues.extend(err.issues)
    grouped: dict[str, list[tuple[YamlDocument, CodeTable]]] = {}
    for document, table in loaded:
        grouped.setdefault(table.table, []).append((document, table))
    for group in grouped.values():
        group.sort(key=lambda pair: pair[1].effective_from)
        for i, other, loc, message in _version_problems([table for _, table in group]):
            issues.append(_issue(group[i][0], loc, f"{message} (see {group[other][0].file})"))
    if issues:
        raise CodeTableError(issues)
    return CodeTables(table for _, table in loaded)


@functools.cache
def default_code_tables() -> CodeTables:
    """The shipped tables, loaded and checked once per process (the gateway calls this at start-up)."""
    return load_code_tables()


def load_crosswalk(
    source: str | PathLike[str] | Traversable | Mapping[str, Any],
    tables: CodeTables | None = None,
    *,
    file: str | None = None,
) -> Crosswalk:
    """Load a crosswalk from a YAML file or an already-parsed mapping and check every target code exists
    in its table during the crosswalk's period (against `tables`, default: the shipped ones).

    `file` names the source in error messages (a mapping has no file or lines of its own)."""
    if isinstance(source, Mapping):
        document = YamlDocument(file or "<crosswalk>", dict(source))
    else:
        path: Traversable = Path(source) if isinstance(source, str | PathLike) else source
        name = file or str(path)
        document = _parse(_read(path, name), name)
    crosswalk = _validate(Crosswalk, document, {_DEFER_CROSS_CHECKS: True})
    problems = _crosswalk_problems(crosswalk)
    problems += _crosswalk_target_problems(crosswalk, default_code_tables() if tables is None else tables)
    if problems:
        raise CodeTableError([_issue(document, loc, message) for loc, message in problems])
    return crosswalk
