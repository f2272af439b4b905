"""What goes wrong in a code-table or crosswalk file: one issue per problem, and the error that carries them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from contracts.errors import ContractError
from contracts.yamldoc import render_key

Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


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


class CodeTableError(ContractError):
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


def problems_text(problems: Sequence[Problem]) -> str:
    """Problems as one line, for a model validator's error (which has no file or line of its own)."""
    return "; ".join(f"{render_key(loc)}: {message}" if loc else message for loc, message in problems)
