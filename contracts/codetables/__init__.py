"""Versioned national code tables and partner crosswalks: models, loaders and date-aware look-ups."""

from contracts.codetables.crosswalk import (
    Crosswalk,
    CrosswalkEntry,
    CrosswalkOutcome,
    CrosswalkResult,
    UnmappedRule,
)
from contracts.codetables.issues import CodeTableError, CodeTableIssue
from contracts.codetables.loading import default_code_tables, load_code_table, load_code_tables, load_crosswalk
from contracts.codetables.models import CodeEntry, CodeTable, CodeTables

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
