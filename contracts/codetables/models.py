"""National code tables: entries, one version of a table, every version by id, and the rules across them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date
from typing import Any, Final, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    PrivateAttr,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts.codetables.fields import AttrKey, AttrValue, Code, IsoDate, TableId, Text, check_end
from contracts.codetables.issues import CodeTableError, CodeTableIssue, Loc, Problem, problems_text
from contracts.yamldoc import render_key


def _window_overlaps(start: date, end: date | None, other_start: date | None, other_end: date | None) -> bool:
    """Whether the half-open periods [start, end) and [other_start, other_end) share a day; None is open."""
    starts_before_other_ends = other_end is None or start < other_end
    other_starts_before_end = end is None or other_start is None or other_start < end
    return starts_before_other_ends and other_starts_before_end


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
        return check_end(value, info)

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
        return check_end(value, info)

    @model_validator(mode="after")
    def _check_codes(self, info: ValidationInfo) -> Self:
        if not (info.context and info.context.get(DEFER_CROSS_CHECKS)):
            problems = table_problems(self)
            if problems:
                raise ValueError(problems_text(problems))
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
            for i, _, loc, message in version_problems(versions):
                issues.append(
                    CodeTableIssue(
                        f"<table {table_id} version {versions[i].version}>", render_key(loc), message
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


# Validation context flag: the loader checks cross-entry rules itself so that each problem keeps its
# own key path (and so its line); a model built directly checks them in its model validator.
DEFER_CROSS_CHECKS: Final = "defer_cross_checks"


def _depth(code: str, parents: Mapping[str, str | None]) -> int | None:
    """Level of `code` by following parents; None when the chain is broken (reported elsewhere)."""
    depth, seen = 1, {code}
    while (parent := parents.get(code)) is not None:
        if parent not in parents or parent in seen:
            return None
        seen.add(parent)
        code, depth = parent, depth + 1
    return depth


def table_problems(table: CodeTable) -> list[Problem]:
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


def version_problems(versions: Sequence[CodeTable]) -> list[tuple[int, int, Loc, str]]:
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

