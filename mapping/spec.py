"""A compiled mapping spec: the field plans, return rules and reverse plan one adapter's YAML spec becomes."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from typing import Any, get_args

from contracts.codesets import NotAcceptedReason, Status
from contracts.codetables import Crosswalk
from contracts.followups import FollowUpKind
from mapping.conditions import Predicate
from mapping.errors import MappingError
from mapping.steps import Note

Produce = Callable[[Any, list[Note]], Any]


class SpecError(MappingError):
    """A spec that cannot be used: every problem found, each naming file, line and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class FieldPlan:
    """One target field and how to fill it; `items` is set for a list of groups written with `each`."""

    target: str
    keys: tuple[str, ...]
    source: str | None
    produce: Produce
    coerce: Callable[[Any], Any] | None  # numbers to text, one value to a list, as the target needs
    items: tuple[FieldPlan, ...] = ()
    each: Callable[[Any], list[Any]] | None = None


@dataclass(frozen=True)
class ReturnRule:
    """Return the ticket to its sender (退单) when `when` holds, with a national not-accepted reason."""

    when: Predicate
    reason_code: NotAcceptedReason
    reason: Callable[[Any], str]


FOLLOW_UP_KINDS: tuple[str, ...] = get_args(FollowUpKind)
# What a follow-up rule may fill: the fields of contracts.followups.FollowUpNotice a partner gives.
FOLLOW_UP_FIELDS = ("source_ticket_no", "at", "text", "version", "reference", "requested_by")


@dataclass(frozen=True)
class FollowUpRule:
    """A payload that is not a ticket but a follow-up of one (补充材料, 催办, 撤诉) when `when` holds; `plans` fill
    the notice's fields (FOLLOW_UP_FIELDS), each plan's target one of them."""

    kind: FollowUpKind
    when: Predicate
    plans: tuple[FieldPlan, ...]


@dataclass(frozen=True)
class ReversePlan:
    """National status and result → the partner's status code and callback fields."""

    status_keys: tuple[str, ...]
    status_codes: Mapping[Status, Any]
    fields: tuple[FieldPlan, ...]


@dataclass(frozen=True)
class MappingSpec:
    """A compiled spec; build it with `load_spec`, run it with `mapping.apply` and `mapping.reverse`."""

    adapter_id: str
    source_system: str
    title: str
    file: str
    zone: tzinfo
    xml_record: str | None
    plans: tuple[FieldPlan, ...]
    returns: tuple[ReturnRule, ...]
    reverse: ReversePlan | None
    sources: Mapping[str, str]  # target field → the source path(s) it reads, for error messages
    crosswalks: Mapping[str, Crosswalk] = field(default_factory=dict)
    ticket_no: FieldPlan | None = None
    follow_ups: tuple[FollowUpRule, ...] = ()
