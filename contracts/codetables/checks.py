"""Cross-entry and cross-version rules of code tables, each problem kept with its own key path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Final

from contracts.codetables.issues import Loc, Problem

if TYPE_CHECKING:
    from contracts.codetables.models import CodeTable

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

