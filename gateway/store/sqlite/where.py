"""The one WHERE builder of the SQLite store's searches and filters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from gateway.store.records import to_ms


def where(conditions: Iterable[tuple[str, object]]) -> tuple[str, list[object]]:
    """`WHERE a = ? AND b >= ?` of the conditions whose value is not None (each condition holds one `?`), and
    those values in the same order; `""` and no values when none applies."""
    clauses: list[str] = []
    params: list[object] = []
    for condition, value in conditions:
        if value is not None:
            clauses.append(condition)
            params.append(value)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params


def ms(at: datetime | None) -> int | None:
    """A time bound as stored (milliseconds since the epoch); None stays None, a condition left out."""
    return None if at is None else to_ms(at)
