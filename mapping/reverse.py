"""The reverse map: a national status (and result) in the partner's own codes, for status callbacks."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from contracts.codesets import Status
from contracts.codetables import default_code_tables
from contracts.status import StatusEvent
from contracts.ticket import Ticket
from mapping.engine import Returned
from mapping.errors import MappingError
from mapping.paths import assign
from mapping.spec import MappingSpec
from mapping.steps import Note, StepError


class ReverseError(MappingError):
    """The spec cannot express this status for its partner (a spec problem, not a partner's)."""


def status_context(
    subject: Ticket | Returned, event: StatusEvent | None = None, *, at: datetime | None = None
) -> dict[str, Any]:
    """What a reverse rule can read (`path: ...`): the status, when and by whom, the result and the visit.

    Keys: status, status_label, at, org, actor, opinion, not_accepted_reason, not_accepted_reason_label,
    sequence, event_id, source_ticket_no, related_ticket_nos, ticket_id, national_registration_no,
    business_type, result.* (CaseResult), follow_up.* (FollowUp)."""
    context: dict[str, Any]
    if isinstance(subject, Returned):
        context = {
            "status": Status.RETURNED.value,
            "source_ticket_no": subject.source_ticket_no,
            "not_accepted_reason": subject.reason_code.value,
            "opinion": subject.reason,
        }
    else:
        lifecycle = subject.lifecycle
        last = lifecycle.events[-1] if lifecycle.events else None
        context = {
            "ticket_id": subject.ticket_id,
            "national_registration_no": subject.national_registration_no,
            "source_ticket_no": subject.source.source_ticket_no,
            "related_ticket_nos": list(subject.source.related_ticket_nos),
            "business_type": subject.classification.business_type.value,
            "status": lifecycle.status.value,
            "not_accepted_reason": _code(lifecycle.not_accepted_reason),
            "result": _plain(lifecycle.result),
            "follow_up": _plain(lifecycle.follow_up),
        }
        if last is not None:
            context.update(at=last.at, org=last.org, actor=last.actor, opinion=last.opinion,
                           sequence=last.sequence, event_id=last.event_id)
        if event is not None:
            context.update(
                status=event.status.value,
                at=event.at,
                org=event.org,
                actor=event.actor,
                opinion=event.opinion,
                sequence=event.sequence,
                event_id=event.event_id,
                not_accepted_reason=_code(event.not_accepted_reason),
            )
            if event.result is not None:
                context["result"] = _plain(event.result)
            if event.follow_up is not None:
                context["follow_up"] = _plain(event.follow_up)
    if at is not None:
        context["at"] = at
    tables = default_code_tables()
    context["status_label"] = tables["status"].label(context["status"])
    reason = context.get("not_accepted_reason")
    context["not_accepted_reason_label"] = tables["not_accepted_reason"].label(reason) if reason else None
    return context


def reverse(
    spec: MappingSpec, subject: Ticket | Returned, event: StatusEvent | None = None, *, at: datetime | None = None
) -> dict[str, Any]:
    """The partner's callback fields for a ticket's current status, a new status event, or a 退单.

    The result is plain JSON data (text, numbers, lists, objects) in the partner's own shape."""
    plan = spec.reverse
    if plan is None:
        raise ReverseError(f"{spec.file}: the spec of {spec.adapter_id} has no reverse map")
    context = status_context(subject, event, at=at)
    out: dict[str, Any] = {}
    assign(out, plan.status_keys, plan.status_codes[Status(context["status"])])
    for field in plan.fields:
        notes: list[Note] = []
        try:
            value = field.produce(context, notes)
        except StepError as err:
            raise ReverseError(f"{spec.file}: reverse field {field.target}: {err.message}") from None
        if value is not None:
            assign(out, field.keys, _jsonable(value))
    return out


def _code(value: Enum | None) -> Any:
    return None if value is None else value.value


def _plain(model: Any) -> dict[str, Any] | None:
    if model is None:
        return None
    return {key: _code(value) if isinstance(value, Enum) else value for key, value in model.model_dump().items()}


def _jsonable(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    return value
