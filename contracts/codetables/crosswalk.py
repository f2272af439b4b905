"""Partner crosswalks: a partner's own codes for one national table, their look-up and their checks."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from contracts.codetables.fields import Code, IsoDate, TableId, Text, check_end
from contracts.codetables.issues import Problem, problems_text
from contracts.codetables.models import DEFER_CROSS_CHECKS, CodeTables


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
        return check_end(value, info)

    @model_validator(mode="after")
    def _check_entries(self, info: ValidationInfo) -> Self:
        if not (info.context and info.context.get(DEFER_CROSS_CHECKS)):
            problems = crosswalk_problems(self)
            if problems:
                raise ValueError(problems_text(problems))
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


def crosswalk_problems(crosswalk: Crosswalk) -> list[Problem]:
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


def crosswalk_target_problems(crosswalk: Crosswalk, tables: CodeTables) -> list[Problem]:
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
