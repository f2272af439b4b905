"""Applying a compiled spec: a partner payload becomes a Ticket, a list of field errors, or a return to sender."""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

from pydantic import ValidationError

from contracts.base import CONTROL_CHARACTER_RULE, control_characters, holds_control_characters
from contracts.codesets import NotAcceptedReason
from contracts.errors import FieldError, field_errors
from contracts.followups import FollowUpNotice
from contracts.ticket import Ticket
from mapping.paths import assign
from mapping.spec import FieldPlan, FollowUpRule, MappingSpec
from mapping.steps import Note, StepError

_SHOWN_TEXT = 200


@dataclass(frozen=True, slots=True)
class Mapped:
    """The payload is a valid national ticket; warnings say what was cut, defaulted or kept for review."""

    ticket: Ticket
    warnings: tuple[FieldError, ...] = ()
    kind: Literal["ok"] = "ok"


@dataclass(frozen=True, slots=True)
class Rejected:
    """The payload does not map: one error per broken rule, each naming target field and source path."""

    errors: tuple[FieldError, ...]
    warnings: tuple[FieldError, ...] = ()
    kind: Literal["errors"] = "errors"


@dataclass(frozen=True, slots=True)
class Returned:
    """The matter is not for the market regulator: send it back (退单) with a national reason."""

    reason_code: NotAcceptedReason
    reason: str
    source_ticket_no: str | None
    kind: Literal["returned"] = "returned"


@dataclass(frozen=True, slots=True)
class Noticed:
    """The payload is a follow-up of a ticket the partner sent before (补充材料, 催办, 撤诉), not a ticket."""

    notice: FollowUpNotice
    warnings: tuple[FieldError, ...] = ()
    kind: Literal["notice"] = "notice"


MappingResult = Mapped | Rejected | Returned | Noticed


def apply(spec: MappingSpec, payload: Any) -> MappingResult:
    """Map one partner payload. Never raises: whatever the payload holds, the answer is a result."""
    try:
        return _apply(spec, payload)
    except Exception as err:  # the boundary: a bug must not take an intake down with it
        return Rejected(
            (
                FieldError(
                    field="(ticket)",
                    rule="internal",
                    message=f"the mapping failed unexpectedly ({type(err).__name__}); the payload is kept for review",
                ),
            )
        )


def _apply(spec: MappingSpec, payload: Any) -> MappingResult:
    # The policy in contracts/base.py: refused wherever it is, before any rule reads the payload.
    if holds_control_characters(payload):
        return Rejected(tuple(FieldError(field=path, rule=CONTROL_CHARACTER_RULE, message=message, source_path=path)
                              for path, message in control_characters(payload)))
    for follow_up in spec.follow_ups:
        if follow_up.when(payload):
            return _notice(spec, follow_up, payload)
    for rule in spec.returns:
        if rule.when(payload):
            return Returned(rule.reason_code, rule.reason(payload), _ticket_no(spec, payload))

    doc: dict[str, Any] = {"source": {"source_system": spec.source_system, "adapter_id": spec.adapter_id}}
    errors: list[FieldError] = []
    warnings: list[FieldError] = []
    failed: list[str] = []
    item_sources: dict[str, str] = {}
    notes: list[Note] = []
    for plan in spec.plans:
        if plan.each is not None:
            value: Any = _items(plan, payload, errors, warnings, failed, item_sources)
        else:
            # `_value` inlined: this loop runs once per target field of every ticket.
            try:
                value = plan.produce(payload, notes)
                if value is not None and plan.coerce is not None:
                    value = plan.coerce(value)
            except (StepError, ValueError, TypeError, ArithmeticError) as err:
                _failed(err, plan.target, plan.source, errors, failed)
                value = None
            if notes:
                _noted(notes, plan.target, plan.source, warnings)
                notes = []
        if value is not None:
            assign(doc, plan.keys, value)

    try:
        ticket = Ticket.model_validate(doc)
    except ValidationError as err:
        for error in field_errors(err):
            if any(_under(error.field, gone) for gone in failed):
                continue  # already reported where the partner's value could not be read
            error.source_path = _source_of(spec, item_sources, error.field)
            error.value = _shown(error.value if error.value is not None else _value_at(doc, error.field))
            _add(errors, error)
        return Rejected(tuple(errors), tuple(warnings))
    if errors:
        return Rejected(tuple(errors), tuple(warnings))
    return Mapped(ticket, tuple(warnings))


def _notice(spec: MappingSpec, rule: FollowUpRule, payload: Any) -> Noticed | Rejected:
    """The follow-up a payload says, or its errors named `follow_up.<field>` with the partner's path."""
    doc: dict[str, Any] = {"kind": rule.kind, "source_system": spec.source_system, "adapter_id": spec.adapter_id}
    errors: list[FieldError] = []
    warnings: list[FieldError] = []
    failed: list[str] = []
    sources = {plan.target: plan.source for plan in rule.plans}
    for plan in rule.plans:
        value = _value(plan, f"follow_up.{plan.target}", plan.source, payload, errors, warnings, failed)
        if value is not None:
            doc[plan.target] = value
    if rule.kind == "supplement" and doc.get("text") is None:
        errors.append(FieldError(field="follow_up.text", rule="required", source_path=sources.get("text"),
                                 message="a supplement (补充材料) carries the added material"))
    if errors:
        return Rejected(tuple(errors), tuple(warnings))
    try:
        notice = FollowUpNotice.model_validate(doc)
    except ValidationError as err:
        for error in field_errors(err):
            name = error.field.split(".")[0]
            error.field = f"follow_up.{error.field}"
            error.source_path = sources.get(name)
            error.value = _shown(error.value if error.value is not None else doc.get(name))
            _add(errors, error)
        return Rejected(tuple(errors), tuple(warnings))
    return Noticed(notice, tuple(warnings))


def _value(
    plan: FieldPlan,
    field: str,
    source: str | None,
    payload: Any,
    errors: list[FieldError],
    warnings: list[FieldError],
    failed: list[str],
) -> Any:
    notes: list[Note] = []
    try:
        value = plan.produce(payload, notes)
        if value is not None and plan.coerce is not None:
            value = plan.coerce(value)
    except (StepError, ValueError, TypeError, ArithmeticError) as err:
        _failed(err, field, source, errors, failed)
        value = None
    _noted(notes, field, source, warnings)
    return value


def _failed(err: Exception, field: str, source: str | None, errors: list[FieldError], failed: list[str]) -> None:
    """A field whose value could not be made: its error (a step's own rule, or `invalid_value`)."""
    failed.append(field)
    if isinstance(err, StepError):
        _add(errors, FieldError(field=field, rule=err.rule, message=err.message, value=_shown(err.value),
                                source_path=source))
    else:
        errors.append(FieldError(field=field, rule="invalid_value", message=f"cannot use the value: {err}",
                                 source_path=source))


def _noted(notes: list[Note], field: str, source: str | None, warnings: list[FieldError]) -> None:
    for rule, message, shown in notes:
        warnings.append(FieldError(field=field, rule=rule, message=message, value=_shown(shown), source_path=source))


def _items(
    plan: FieldPlan,
    payload: Any,
    errors: list[FieldError],
    warnings: list[FieldError],
    failed: list[str],
    item_sources: dict[str, str],
) -> list[dict[str, Any]] | None:
    assert plan.each is not None
    found = plan.each(payload)
    if not found:
        return None
    built: list[dict[str, Any]] = []
    for index, item in enumerate(found):
        group: dict[str, Any] = {}
        for sub in plan.items:
            field = f"{plan.target}[{index}].{sub.target}"
            source = f"{plan.source}[{index}].{sub.source}" if sub.source else None
            if source is not None:
                item_sources[field] = source
            value = _value(sub, field, source, item, errors, warnings, failed)
            if value is not None:
                assign(group, sub.keys, value)
        built.append(group)
    return built


def _add(errors: list[FieldError], error: FieldError) -> None:
    # One partner value feeding several targets (tyshxydm → uscc and 注册号, djrq → received and registered
    # times) is one error, named after the first target, not one per target.
    if error.source_path is not None and any(
        known.source_path == error.source_path and known.rule == error.rule for known in errors
    ):
        return
    errors.append(error)


def _value_at(doc: dict[str, Any], field: str) -> Any:
    value: Any = doc
    for part in field.replace("[", ".").replace("]", "").split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value




def _under(field: str, prefix: str) -> bool:
    return field == prefix or field.startswith((prefix + ".", prefix + "["))


def _source_of(spec: MappingSpec, item_sources: dict[str, str], field: str) -> str | None:
    """The partner path behind a target field, or behind the nearest group that contains it."""
    current = field
    while current:
        found = item_sources.get(current) or spec.sources.get(current)
        if found is not None:
            return found
        cut = max(current.rfind("."), current.rfind("["))
        current = current[:cut] if cut > 0 else ""
    return None


def _ticket_no(spec: MappingSpec, payload: Any) -> str | None:
    if spec.ticket_no is None:
        return None
    try:
        value = spec.ticket_no.produce(payload, [])
    except (StepError, ValueError, TypeError, ArithmeticError):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() < 64:
        return str(value)
    return value if isinstance(value, str) else None


def _shown(value: Any) -> Any:
    """A value safe to put in an error: short text, a number, or nothing."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int):
        return value if value.bit_length() < 64 else None
    if isinstance(value, Decimal):
        return str(value) if value.adjusted() < 30 else None
    if isinstance(value, str):
        return value if len(value) <= _SHOWN_TEXT else value[:_SHOWN_TEXT] + "…"
    return None
