"""The one WHERE builder of the PostgreSQL store's searches and filters."""

from __future__ import annotations

from collections.abc import Iterable


def where(conditions: Iterable[tuple[str, object]], first: int = 1) -> tuple[str, list[object]]:
    """`WHERE a = $1 AND b >= $2` of the conditions whose value is not None (each holds one `{}`, the place of its
    parameter, numbered from `first`), and those values in order; `""` and no values when none applies."""
    clauses: list[str] = []
    params: list[object] = []
    for condition, value in conditions:
        if value is not None:
            params.append(value)
            clauses.append(condition.format(f"${first + len(params) - 1}"))
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params
