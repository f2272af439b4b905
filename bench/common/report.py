"""Writing one benchmark's section of docs/benchmarks.md, leaving every other section as it is."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "benchmarks.md"


def write_section(title: str, text: str) -> None:
    """Replace (or append) the section headed `## {title}`; `text` starts with that heading."""
    heading = f"## {title}"
    current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    start = current.find(f"\n{heading}\n")
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n"
    else:
        end = current.find("\n## ", start + 1)
        updated = current[:start + 1] + text.rstrip("\n") + "\n" + (current[end:] if end != -1 else "")
    DOCS.write_text(updated, encoding="utf-8")
    print(f"wrote the {heading!r} section of {DOCS}", file=sys.stderr)


def machine(load_at_start: str, load_at_end: str) -> str:
    return (f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"SQLite {sqlite3.sqlite_version}; load average (1/5/15 min) {load_at_start} at the start and "
            f"{load_at_end} at the end of the run")
