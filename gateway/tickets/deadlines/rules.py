"""Statutory time limits as data: rule sets selected by the date they were in force."""

from __future__ import annotations

from datetime import date
from itertools import pairwise
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

from contracts.yamldoc import load_yaml_model
from gateway.errors import GatewayError

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[3] / "config" / "deadline-rules.yaml"

LimitName = Literal["acceptance", "mediation", "report_clue_check", "reporter_notice", "jurisdiction_dispute"]
StartEvent = Literal["receipt", "acceptance", "filing_decision", "dispute"]


class NoRuleSetInForce(GatewayError, LookupError):
    """No rule set in the rule book covers the requested date."""


class ExtensionRule(BaseModel):
    """How a time limit may be extended: working days added per extension and how many are allowed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    working_days: PositiveInt
    max_extensions: PositiveInt = 1
    article: str = ""


class TimeLimit(BaseModel):
    """One statutory time limit: N working days counted from an event, per a given article."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    working_days: PositiveInt
    counted_from: StartEvent
    article: str
    extension: ExtensionRule | None = None


class Limits(BaseModel):
    """The time limits of one rule set, by name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    acceptance: TimeLimit
    mediation: TimeLimit
    report_clue_check: TimeLimit
    reporter_notice: TimeLimit
    jurisdiction_dispute: TimeLimit

    def get(self, name: LimitName) -> TimeLimit:
        """The time limit called ``name``."""
        limit: TimeLimit = getattr(self, name)
        return limit


class RuleSet(BaseModel):
    """The time limits in force between two dates, with the legal source they come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    effective_from: date
    effective_to: date | None = None
    source: str = Field(min_length=1)
    limits: Limits

    @model_validator(mode="after")
    def _window_is_ordered(self) -> RuleSet:
        if self.effective_to is not None and self.effective_to < self.effective_from:
            raise ValueError(
                f"effective_to {self.effective_to} is before effective_from {self.effective_from}"
            )
        return self

    def in_force_on(self, day: date) -> bool:
        """Whether this rule set applies to something that happened on ``day``."""
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


class RuleBook(BaseModel):
    """All rule sets; their effective windows must not overlap so every date has one answer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rule_sets: list[RuleSet] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids_unique_and_windows_disjoint(self) -> RuleBook:
        ids = [r.id for r in self.rule_sets]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate rule set id(s): {', '.join(duplicates)}")
        ordered = sorted(self.rule_sets, key=lambda r: r.effective_from)
        for earlier, later in pairwise(ordered):
            if earlier.effective_to is None or earlier.effective_to >= later.effective_from:
                raise ValueError(
                    f"rule sets {earlier.id!r} and {later.id!r} overlap: give {earlier.id!r} an "
                    f"effective_to before {later.effective_from}"
                )
        return self

    @classmethod
    def from_file(cls, path: Path = DEFAULT_RULES_PATH) -> RuleBook:
        """Load and validate a rules file; a malformed file raises ConfigFileError naming file and key."""
        return load_yaml_model(path, cls)

    def rules_on(self, day: date) -> RuleSet:
        """The rule set in force on ``day``."""
        for rule_set in self.rule_sets:
            if rule_set.in_force_on(day):
                return rule_set
        raise NoRuleSetInForce(f"no deadline rule set is in force on {day.isoformat()}")

    def get(self, rule_set_id: str) -> RuleSet:
        """The rule set with id ``rule_set_id``."""
        for rule_set in self.rule_sets:
            if rule_set.id == rule_set_id:
                return rule_set
        raise KeyError(f"unknown deadline rule set {rule_set_id!r}")
