"""The jurisdiction screen (受理范围): is a mapped ticket market regulation's matter, another authority's (退单),
or one for an operator to decide? Rules are data (config/jurisdiction.yaml); docs/jurisdiction.md explains them.

Precedence, so that every decision can be explained by what matched:
1. every rule is tried; a rule matches when each condition it gives matches (a phrase set whose `none_of`
   occurs in the text does not match);
2. a matching `review` rule decides review;
3. otherwise matching `accept` and `return` rules together are a conflict: review (rule id `conflict`);
4. otherwise the first matching `return` rule (file order) returns the ticket, or the first `accept` rule
   accepts it;
5. nothing matched: the file's `default` (shipped: accept — the partner already chose market regulation).
The decision's evidence lists what every matching rule matched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

import ahocorasick
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from contracts.codesets import BusinessType, NotAcceptedReason
from contracts.codetables import default_code_tables
from contracts.ticket import Evidence, JurisdictionDecision, JurisdictionOutcome, Ticket
from contracts.yamldoc import load_yaml_model
from gateway.tickets.text import PhraseSet, TicketText, normalise

CONFLICT_RULE = "conflict"
DEFAULT_RULE = "default"
_EVIDENCE_MAX = 20

Code = Annotated[str, Field(min_length=1, max_length=12, pattern=r"^[0-9A-Z]+$")]
CategoryPrefix = Annotated[str, Field(min_length=1, max_length=100)]
_CODE_TABLES = {"question_codes": "question_category", "industry_codes": "industry_category",
                "object_codes": "object_category", "respondent_types": "entity_type"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _known_codes(table: str, codes: list[str] | None) -> list[str] | None:
    """Each code (a prefix of the codes it matches) must be a code of its table: a typo would never match."""
    if codes is None:
        return None
    known = default_code_tables()[table]
    unknown = [c for c in codes if not known.valid_during(c, date.min)]
    if unknown:
        raise ValueError(f"not codes of table {table}: {', '.join(unknown)}")
    return codes


class Condition(_Strict):
    """What a rule looks at. Every condition given must match; a list matches when any of its items does.
    Codes match as prefixes (a rule on "06" matches 0602 and 060201)."""

    text: PhraseSet | None = None  # over title, content, request and keywords, normalised
    question_codes: list[Code] | None = None
    industry_codes: list[Code] | None = None  # the respondent's
    object_codes: list[Code] | None = None
    respondent_types: list[Code] | None = None  # entity_type codes of the respondent
    # The partner's own category path: the ticket's keywords joined with "_" (the provincial questiontype
    # 大类_中类_小类 is mapped to its three keywords); prefixes of that path.
    category_paths: list[CategoryPrefix] | None = None
    business_types: list[BusinessType] | None = None
    respondent_named: bool | None = None  # whether the ticket names a respondent at all

    @field_validator("question_codes", "industry_codes", "object_codes", "respondent_types")
    @classmethod
    def _codes_known(cls, codes: list[str] | None, info: ValidationInfo) -> list[str] | None:
        return _known_codes(_CODE_TABLES[str(info.field_name)], codes)

    @model_validator(mode="after")
    def _says_something(self) -> Condition:
        if all(getattr(self, name) is None for name in type(self).model_fields):
            raise ValueError("a rule's `when` needs at least one condition (it would match every ticket)")
        for name in ("question_codes", "industry_codes", "object_codes", "respondent_types", "category_paths",
                     "business_types"):
            if getattr(self, name) == []:
                raise ValueError(f"{name} is empty: give at least one value or leave it out")
        return self

    def evidence(self, facts: _Facts, text: _TextMatcher | None) -> list[Evidence] | None:
        """What matched, one item per condition; None when some condition does not match. `text`: this
        condition's phrase set, compiled (JurisdictionRules.compiled)."""
        found: list[Evidence] = []
        if text is not None:
            phrase = text.find(facts.text.whole, facts.present)
            if phrase is None:
                return None
            found.append(Evidence(field=facts.text.field_of(phrase), matched=phrase[:200]))
        for codes, value, field in ((self.question_codes, facts.question, "problem.question_category_code"),
                                    (self.industry_codes, facts.industry, "respondent.industry_code"),
                                    (self.object_codes, facts.object, "subject.object_category_code"),
                                    (self.respondent_types, facts.entity_type, "respondent.entity_type_code")):
            if codes is None:
                continue
            if value is None or not any(value.startswith(code) for code in codes):
                return None
            found.append(Evidence(field=field, matched=value))
        if self.category_paths is not None:
            if not facts.category or not any(facts.category.startswith(p) for p in self.category_paths):
                return None
            found.append(Evidence(field="registration.keywords", matched=facts.category[:200]))
        if self.business_types is not None:
            if facts.business_type not in self.business_types:
                return None
            found.append(Evidence(field="classification.business_type", matched=facts.business_type.value))
        if self.respondent_named is not None:
            if facts.respondent_named != self.respondent_named:
                return None
            found.append(Evidence(field="respondent.name", matched="有" if facts.respondent_named else "无"))
        return found


class JurisdictionRule(_Strict):
    """One rule: when its conditions match, it votes for its outcome."""

    id: Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]
    outcome: JurisdictionOutcome
    when: Condition
    reason: Annotated[str, Field(min_length=1, max_length=300)]  # Chinese, shown to the partner on a return
    authority: Annotated[str, Field(min_length=1, max_length=100)] | None = None  # the likely competent authority
    return_reason_code: NotAcceptedReason | None = None  # the national not-accepted reason the 退单 carries

    @model_validator(mode="after")
    def _return_names_authority(self) -> JurisdictionRule:
        if self.outcome == "return":
            if self.authority is None or self.return_reason_code is None:
                raise ValueError("a return rule needs `authority` (the likely competent authority) and "
                                 "`return_reason_code` (not-accepted reason 1-7)")
            if self.authority not in self.reason:
                raise ValueError(f"a return rule's reason must name its authority {self.authority!r}: the "
                                 "partner and the citizen read it")
        elif self.return_reason_code is not None:
            raise ValueError("return_reason_code is only for return rules")
        return self


class DefaultDecision(_Strict):
    """What happens to a ticket no rule matches."""

    outcome: Literal["accept", "review"] = "accept"
    reason: Annotated[str, Field(min_length=1, max_length=300)] = "未命中受理范围规则，按市场监管事项受理"


class JurisdictionRules(_Strict):
    """config/jurisdiction.yaml: the default and the rules, in the order precedence step 4 reads them."""

    default: DefaultDecision = Field(default_factory=DefaultDecision)
    rules: list[JurisdictionRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _ids_unique(self) -> JurisdictionRules:
        ids = [r.id for r in self.rules]
        repeated = sorted({i for i in ids if ids.count(i) > 1} | ({CONFLICT_RULE, DEFAULT_RULE} & set(ids)))
        if repeated:
            raise ValueError(f"rule ids must be unique and not `{CONFLICT_RULE}`/`{DEFAULT_RULE}`: "
                             f"{', '.join(repeated)}")
        return self

    @cached_property
    def compiled(self) -> tuple[tuple[_CompiledRule, ...], _PhraseIndex]:
        """Each rule with its phrase set as plain tuples, and the index of all phrases, built once: the screen
        runs on every intake, and a pydantic model's private attributes cost microseconds per read."""
        rules = tuple(_CompiledRule.of(rule) for rule in self.rules)
        return rules, _PhraseIndex(rules)

    @classmethod
    def from_file(cls, path: Path) -> JurisdictionRules:
        """Read and check the rules file; YamlFileError names file, line and key of each problem."""
        return load_yaml_model(path, cls)


@dataclass(frozen=True, slots=True)
class _TextMatcher:
    """A PhraseSet's phrases, patterns and exclusions, normalised and compiled. `find` answers as PhraseSet.find,
    given the phrases present in the text (found once for every rule: _PhraseIndex)."""

    phrases: tuple[str, ...]
    phrase_set: frozenset[str]
    regexes: tuple[re.Pattern[str], ...]
    exclusions: frozenset[str]

    @classmethod
    def of(cls, phrases: PhraseSet) -> _TextMatcher:
        normalised = tuple(normalise(p) for p in phrases.any_of)
        return cls(normalised, frozenset(normalised), tuple(re.compile(p) for p in phrases.patterns),
                   frozenset(normalise(p) for p in phrases.none_of))

    def find(self, normalised: str, present: frozenset[str]) -> str | None:
        if present:
            if not self.exclusions.isdisjoint(present):
                return None
            if not self.phrase_set.isdisjoint(present):
                return next(p for p in self.phrases if p in present)
        for regex in self.regexes:
            match = regex.search(normalised)
            if match is not None:
                return match.group(0)
        return None


@dataclass(frozen=True, slots=True)
class _CompiledRule:
    rule: JurisdictionRule
    text: _TextMatcher | None
    # When the rule needs one of these phrases (a phrase set without patterns): a text holding none of them
    # skips the rule without looking further.
    needs: frozenset[str] | None

    @classmethod
    def of(cls, rule: JurisdictionRule) -> _CompiledRule:
        text = None if rule.when.text is None else _TextMatcher.of(rule.when.text)
        needs = text.phrase_set if text is not None and not text.regexes else None
        return cls(rule, text, needs)


class _PhraseIndex:
    """Every phrase and exclusion of every rule in one Aho-Corasick automaton: a text is read once per screening
    for all of them, however many rules share a phrase; then only the rules that can match are tried."""

    def __init__(self, rules: tuple[_CompiledRule, ...]) -> None:
        matchers = [rule.text for rule in rules if rule.text is not None]
        phrases = {p for matcher in matchers for p in (*matcher.phrases, *matcher.exclusions)}
        self._automaton: ahocorasick.Automaton | None = None
        if phrases:
            automaton = ahocorasick.Automaton()
            for phrase in phrases:
                automaton.add_word(phrase, phrase)
            automaton.make_automaton()
            self._automaton = automaton
        # Rules by the phrases they need (one of which must be present); the others are tried on every ticket.
        self._always = frozenset(i for i, rule in enumerate(rules) if rule.needs is None)
        needed_by: dict[str, list[int]] = {}
        for i, rule in enumerate(rules):
            for phrase in rule.needs or ():
                needed_by.setdefault(phrase, []).append(i)
        self._needed_by = {phrase: tuple(rule_numbers) for phrase, rule_numbers in needed_by.items()}

    def present(self, text: TicketText) -> frozenset[str]:
        """The phrases found in the ticket's words (which are normalised only when some rule has phrases)."""
        if self._automaton is None:
            return frozenset()
        return frozenset(phrase for _, phrase in self._automaton.iter(text.whole))

    def candidates(self, present: frozenset[str]) -> list[int]:
        """The numbers of the rules that can match a text holding these phrases, in file order."""
        numbers = set(self._always)
        for phrase in present:
            numbers.update(self._needed_by.get(phrase, ()))
        return sorted(numbers)


@dataclass(frozen=True)
class _Facts:
    """The ticket as the rules read it, computed once per screening."""

    text: TicketText
    present: frozenset[str]  # the rules' phrases found in the text
    question: str | None
    industry: str | None
    object: str | None
    entity_type: str | None
    category: str
    business_type: BusinessType
    respondent_named: bool

    @classmethod
    def of(cls, ticket: Ticket, index: _PhraseIndex) -> _Facts:
        text = TicketText(ticket)
        keywords = ticket.registration.keywords
        return cls(
            text=text,
            present=index.present(text),
            question=ticket.problem.question_category_code,
            industry=ticket.respondent.industry_code,
            object=ticket.subject.object_category_code,
            entity_type=ticket.respondent.entity_type_code,
            category="_".join(k.strip() for k in keywords) if keywords else "",
            business_type=ticket.classification.business_type,
            respondent_named=bool(ticket.respondent.name),
        )


def screen(ticket: Ticket, rules: JurisdictionRules, *, now: datetime | None = None) -> JurisdictionDecision:
    """Decide whose matter a ticket is, by the precedence in this module's docstring. Pure."""
    at = now or datetime.now(UTC)
    compiled, index = rules.compiled
    facts = _Facts.of(ticket, index)
    matched: list[tuple[JurisdictionRule, list[Evidence]]] = []
    for number in index.candidates(facts.present):
        item = compiled[number]
        evidence = item.rule.when.evidence(facts, item.text)
        if evidence is not None:
            matched.append((item.rule, evidence))
    if not matched:
        return JurisdictionDecision(outcome=rules.default.outcome, rule_id=DEFAULT_RULE,
                                    reason=rules.default.reason, decided_at=at)
    evidence = [e for _, found in matched for e in found][:_EVIDENCE_MAX]
    by_outcome: dict[str, list[JurisdictionRule]] = {"accept": [], "return": [], "review": []}
    for rule, _ in matched:
        by_outcome[rule.outcome].append(rule)
    if by_outcome["review"]:
        first = by_outcome["review"][0]
        return JurisdictionDecision(outcome="review", rule_id=first.id, evidence=evidence, reason=first.reason,
                                    competent_authority=first.authority, decided_at=at)
    if by_outcome["accept"] and by_outcome["return"]:
        accept, back = by_outcome["accept"][0], by_outcome["return"][0]
        reason = (f"规则冲突，需人工判断：{accept.id}（{accept.reason}）与 {back.id}（{back.reason}）同时命中")
        return JurisdictionDecision(outcome="review", rule_id=CONFLICT_RULE, evidence=evidence,
                                    reason=reason[:300], competent_authority=back.authority, decided_at=at)
    if by_outcome["return"]:
        back = by_outcome["return"][0]
        return JurisdictionDecision(outcome="return", rule_id=back.id, evidence=evidence, reason=back.reason,
                                    competent_authority=back.authority,
                                    return_reason_code=back.return_reason_code.value
                                    if back.return_reason_code else None, decided_at=at)
    accept = by_outcome["accept"][0]
    return JurisdictionDecision(outcome="accept", rule_id=accept.id, evidence=evidence, reason=accept.reason,
                                decided_at=at)
