"""Routing rules' conditions: what a rule looks at on a ticket (codes, text, credit flags, amounts, head counts),
and the evidence each match leaves on the ticket's route."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from contracts.codesets import BusinessType, NotAcceptedReason, Status, Urgency
from contracts.codetables import default_code_tables
from contracts.ticket import Evidence, Ticket
from contracts.yamldoc import YamlDocumentError, YamlFileError, parse_yaml
from gateway.tickets.text import PhraseSet, TicketText

_MATCHED_MAX = 200  # Evidence.matched
_EVIDENCE_MAX = 20  # RouteDecision.evidence


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _code_prefix(table: str) -> AfterValidator:
    """A code of a hierarchical national table: its children begin with it, so it selects them too."""

    def run(value: str) -> str:
        if not default_code_tables()[table].valid_during(value, date.min):
            raise ValueError(f"{value!r} is not a code of table {table}")
        return value

    return AfterValidator(run)


IndustryCode = Annotated[str, _code_prefix("industry_category")]
QuestionCode = Annotated[str, _code_prefix("question_category")]
ObjectCode = Annotated[str, _code_prefix("object_category")]
EntityTypeCode = Annotated[str, _code_prefix("entity_type")]
FlagPart = Annotated[str, Field(min_length=1, max_length=50)]


# A match as (field, what matched): made into Evidence only once the whole rule matched (a model costs microseconds).
Found = tuple[str, str]


def _evidence(field: str, matched: object) -> Found:
    return field, str(matched)[:_MATCHED_MAX]


def _prefixed(field: str, value: str | None, prefixes: list[str] | None) -> list[Found] | None:
    """[] when not asked; the evidence when the value begins with one of the prefixes; None when it does not."""
    if prefixes is None:
        return []
    if value is not None and value.startswith(tuple(prefixes)):
        return [_evidence(field, value)]
    return None


class Condition(_Strict):
    """All given fields must match; a list means any of its values. Each match leaves its evidence."""

    business_type: list[BusinessType] | None = None
    urgency: list[Urgency] | None = None
    status: list[Status] | None = None
    has_penalty: bool | None = None
    region_prefix: Annotated[str, Field(pattern=r"^\d{2,6}$")] | None = None
    # The ticket's words (title, content, request, keywords), normalised: phrases and patterns, with exclusions.
    text: PhraseSet | None = None
    # The respondent's credit flags from the credit look-up: a flag matches when it contains one of these
    # (失信 matches 严重违法失信).
    credit_flags: Annotated[list[FlagPart], Field(min_length=1)] | None = None
    # Code prefixes in the national tables (a code selects its children): respondent's industry and type
    # (市场主体类型), the question and the object (客体) of the matter.
    industry_prefix: Annotated[list[IndustryCode], Field(min_length=1)] | None = None
    respondent_type: Annotated[list[EntityTypeCode], Field(min_length=1)] | None = None
    question_prefix: Annotated[list[QuestionCode], Field(min_length=1)] | None = None
    object_prefix: Annotated[list[ObjectCode], Field(min_length=1)] | None = None
    # The amount in dispute (subject.amount, CNY) is at least this.
    amount_at_least: Annotated[Decimal, Field(gt=0)] | None = None
    # The text says at least this many people were involved ("40多人", "三十余人", "上百名").
    people_at_least: Annotated[int, Field(ge=2)] | None = None

    def matches(self, ticket: Ticket) -> bool:
        return self.evidence(ticket, TicketText(ticket)) is not None

    @cached_property
    def checks(self) -> tuple[Callable[[Ticket, TicketText], list[Found] | None], ...]:
        """The checks of the fields this condition gives, cheap ones first; worked out once, not per ticket."""
        given = {
            self._fields: (self.business_type, self.urgency, self.status, self.has_penalty, self.region_prefix),
            self._codes: (self.industry_prefix, self.respondent_type, self.question_prefix, self.object_prefix),
            self._amount: (self.amount_at_least,), self._credit: (self.credit_flags,), self._text: (self.text,),
            self._people: (self.people_at_least,),
        }
        return tuple(check for check, values in given.items() if any(v is not None for v in values))

    def evidence(self, ticket: Ticket, text: TicketText) -> list[Evidence] | None:
        """What matched, field by field; None as soon as one field does not (cheap fields are tried first)."""
        found: list[Found] = []
        for check in self.checks:
            matched = check(ticket, text)
            if matched is None:
                return None
            found += matched
        return [Evidence(field=field, matched=value) for field, value in found[:_EVIDENCE_MAX]]

    def _fields(self, ticket: Ticket, _: TicketText) -> list[Found] | None:
        found = []
        c, life = ticket.classification, ticket.lifecycle
        for field, value, allowed in (("classification.business_type", c.business_type, self.business_type),
                                      ("classification.urgency", c.urgency, self.urgency),
                                      ("lifecycle.status", life.status, self.status)):
            if allowed is None:
                continue
            if value not in allowed:
                return None
            found.append(_evidence(field, value.value))
        if self.has_penalty is not None:
            result = life.result
            penalty = (result.penalty_amount or result.confiscation_amount) if result is not None else None
            if bool(penalty) != self.has_penalty:
                return None
            found.append(_evidence("lifecycle.result.penalty_amount", penalty if penalty else "none"))
        if self.region_prefix is not None:
            field, region = ("respondent.operating_region_code", ticket.respondent.operating_region_code)
            if region is None:
                field, region = ("occurrence.incident_region_code", ticket.occurrence.incident_region_code)
            if not (region or "").startswith(self.region_prefix):
                return None
            found.append(_evidence(field, region))
        return found

    def _codes(self, ticket: Ticket, _: TicketText) -> list[Found] | None:
        found = []
        for field, value, prefixes in (
                ("respondent.industry_code", ticket.respondent.industry_code, self.industry_prefix),
                ("respondent.entity_type_code", ticket.respondent.entity_type_code, self.respondent_type),
                ("problem.question_category_code", ticket.problem.question_category_code, self.question_prefix),
                ("subject.object_category_code", ticket.subject.object_category_code, self.object_prefix)):
            matched = _prefixed(field, value, prefixes)
            if matched is None:
                return None
            found += matched
        return found

    def _amount(self, ticket: Ticket, _: TicketText) -> list[Found] | None:
        if self.amount_at_least is None:
            return []
        amount = ticket.subject.amount
        return [_evidence("subject.amount", amount)] if amount is not None and amount >= self.amount_at_least else None

    def _credit(self, ticket: Ticket, _: TicketText) -> list[Found] | None:
        if self.credit_flags is None:
            return []
        flags = [f for f in ticket.respondent.credit_flags if any(part in f for part in self.credit_flags)]
        return [_evidence("respondent.credit_flags", f) for f in flags] or None

    def _text(self, _: Ticket, text: TicketText) -> list[Found] | None:
        if self.text is None:
            return []
        matched = self.text.find(text.whole)
        return None if matched is None else [_evidence(text.field_of(matched), matched)]

    def _people(self, _: Ticket, text: TicketText) -> list[Found] | None:
        if self.people_at_least is None:
            return []
        best = text.most_people
        if best is None or best[1].people < self.people_at_least:
            return None
        return [_evidence(best[0], best[1].phrase)]


class ReturnReason(_Strict):
    """What the partner hears when a rule sends the ticket back (退单): the national reason code and a sentence."""

    code: NotAcceptedReason
    reason: Annotated[str, Field(min_length=1, max_length=300)]


class RoutingRule(_Strict):
    """When a ticket meets `when` on its trigger: a copy to `destination` (action route), or, at intake only,
    the ticket back to its sender (action return, with `return_reason`)."""

    id: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]*$", max_length=80)] | None = None
    name: Annotated[str, Field(min_length=1)]
    trigger: Literal["intake", "status"]
    when: Condition = Field(default_factory=Condition)
    destination: Annotated[str, Field(min_length=1, max_length=64)]
    urgent: bool = False  # goes on the lane ahead of normal traffic
    action: Literal["route", "return"] = "route"
    return_reason: ReturnReason | None = None

    @property
    def rule_id(self) -> str:
        return self.id or self.name[:80]

    @model_validator(mode="after")
    def _a_return_happens_at_intake_with_a_reason(self) -> RoutingRule:
        if self.action == "return" and self.trigger != "intake":
            raise ValueError("action return needs trigger intake: a stored ticket cannot be sent back by routing")
        if self.action == "return" and self.return_reason is None:
            raise ValueError("action return needs return_reason (code and reason the partner is told)")
        return self


def unique_rule_ids(rules: Iterable[RoutingRule]) -> list[str]:
    """Rule ids said more than once (a route's rule_id must name one rule)."""
    ids = [r.rule_id for r in rules]
    return sorted({i for i in ids if ids.count(i) > 1})


def check_lanes(file: Path, rules: list[RoutingRule], national: str, lanes: set[str], lanes_file: Path) -> None:
    """Every destination a routing file names is a lane the delivery file defines; YamlFileError naming each
    line and key otherwise (found at start-up and by check-config, not when the first ticket matches)."""
    unknown: list[tuple[tuple[str | int, ...], str]] = []
    if national not in lanes:
        unknown.append((("national_destination",), national))
    unknown += [(("rules", i, "destination"), r.destination) for i, r in enumerate(rules) if r.destination not in lanes]
    if not unknown:
        return
    try:
        document = parse_yaml(file.read_text(encoding="utf-8"), str(file))
    except (OSError, YamlDocumentError) as err:
        raise YamlFileError([f"{file}: {err}"]) from err
    known = ", ".join(sorted(lanes))
    raise YamlFileError([str(document.error(path, f"unknown lane {name!r}: {lanes_file} defines {known}"))
                         for path, name in unknown])
