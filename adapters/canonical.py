"""The `canonical` mapping: a partner that already speaks the national standard is validated, not mapped."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from adapters.config import AdapterConfig
from contracts.base import CHINA_STANDARD_TIME, CONTROL_CHARACTER_RULE, control_characters, holds_control_characters
from contracts.errors import FieldError, field_errors
from contracts.followups import FollowUpNotice
from contracts.ticket import Ticket
from mapping.engine import Mapped, Noticed, Rejected

# What only the gateway decides: its own id for the ticket, and where the ticket stands and who handles it.
GATEWAY_OWNED = ("ticket_id", "lifecycle", "routing")


# What a canonical follow-up (补充材料, 催办, 撤诉) carries beside its `kind`; a ticket has no top-level `kind`.
FOLLOW_UP_KIND = "kind"


def canonical_ticket(payload: Any, config: AdapterConfig, *,
                     now: datetime | None = None) -> Mapped | Noticed | Rejected:
    """The ticket a canonical payload describes, or the follow-up (a body with a top-level `kind`), or the fields
    it breaks; never raises.

    The receiving adapter fills `source.adapter_id` and, when absent, `source.source_system` (its
    partner_system) and `source.source_received_at` (now). A payload naming another adapter, or setting
    what only the gateway decides (ticket_id, lifecycle, routing), is refused field by field.
    """
    if not isinstance(payload, dict):
        return Rejected((FieldError(field="(ticket)", rule="object_expected", source_path="$",
                                    message="a canonical ticket is a JSON object in the national schema"),))
    errors = [FieldError(field=key, rule="gateway_owned", source_path=key, value=None,
                         message=f"{key} is set by the gateway, not by the sender")
              for key in GATEWAY_OWNED if key in payload]
    if holds_control_characters(payload):  # the policy in contracts/base.py
        errors += [FieldError(field=path, rule=CONTROL_CHARACTER_RULE, message=message, source_path=path)
                   for path, message in control_characters(payload)]
    if FOLLOW_UP_KIND in payload:
        return canonical_follow_up(payload, config, errors, now=now)
    doc = dict(payload)
    source = doc.get("source")
    if source is None:
        source = {}
    if isinstance(source, dict):
        source = dict(source)
        given = source.get("adapter_id")
        if given is not None and given != config.id:
            errors.append(FieldError(field="source.adapter_id", rule="adapter_mismatch",
                                     source_path="source.adapter_id", value=given if isinstance(given, str) else None,
                                     message=f"this ticket was sent to adapter {config.id!r}"))
        source["adapter_id"] = config.id
        source.setdefault("source_system", config.partner_system)
        source.setdefault("source_received_at", (now or datetime.now(CHINA_STANDARD_TIME)).isoformat())
        doc["source"] = source
    if errors:
        return Rejected(tuple(errors))
    try:
        ticket = Ticket.model_validate(doc)
    except ValidationError as err:
        found = field_errors(err)
        for error in found:
            error.source_path = error.field
        return Rejected(tuple(found))
    return Mapped(ticket)


def canonical_follow_up(payload: dict[str, Any], config: AdapterConfig, errors: list[FieldError], *,
                        now: datetime | None = None) -> Noticed | Rejected:
    """A canonical sender's follow-up of a ticket it sent before (`contracts.followups.FollowUpNotice`): the adapter
    fills `adapter_id`, and `source_system` and `at` when absent; each broken field named with its rule."""
    doc = dict(payload)
    given = doc.get("adapter_id")
    if given is not None and given != config.id:
        errors.append(FieldError(field="adapter_id", rule="adapter_mismatch", source_path="adapter_id",
                                 value=given if isinstance(given, str) else None,
                                 message=f"this follow-up was sent to adapter {config.id!r}"))
    if doc.get(FOLLOW_UP_KIND) == "supplement" and not doc.get("text"):
        errors.append(FieldError(field="text", rule="required_for_supplement", source_path="text",
                                 message="a supplement (补充材料) carries the added material in text"))
    doc["adapter_id"] = config.id
    doc.setdefault("source_system", config.partner_system)
    doc.setdefault("at", (now or datetime.now(CHINA_STANDARD_TIME)).isoformat())
    if errors:
        return Rejected(tuple(errors))
    try:
        notice = FollowUpNotice.model_validate(doc)
    except ValidationError as err:
        found = field_errors(err)
        for error in found:
            error.source_path = error.field
        return Rejected(tuple(found))
    return Noticed(notice)


def canonical_follow_up_schema() -> dict[str, Any]:
    """The JSON Schema of a canonical follow-up as pushed: the notice, with what the adapter fills in optional."""
    schema = FollowUpNotice.model_json_schema(mode="validation")
    schema["required"] = [k for k in schema.get("required", []) if k not in ("adapter_id", "source_system", "at")]
    schema["description"] = ("A follow-up of a ticket sent before (补充材料 supplement, 催办 urge, 撤诉 withdrawal), "
                             "naming it by source_ticket_no; adapter_id, source_system and at (now) are filled in "
                             "when absent. A supplement carries text.")
    return schema


def canonical_push_schema(ref_prefix: str) -> dict[str, Any]:
    """The JSON Schema of what a canonical adapter takes: the national ticket, without what the gateway sets
    (GATEWAY_OWNED) and with the source fields it fills in optional. Its definitions are referenced as
    `{ref_prefix}{Model}` and returned under "$defs", for the caller to place where those references point."""
    schema = Ticket.model_json_schema(mode="validation", ref_template=ref_prefix + "{model}")
    for key in GATEWAY_OWNED:
        schema["properties"].pop(key, None)
    schema["required"] = [key for key in schema.get("required", []) if key not in GATEWAY_OWNED]
    source = schema["$defs"].get("Source")
    if source is not None:  # filled in from the adapter's configuration and the time of receipt
        source["required"] = [key for key in source.get("required", [])
                              if key not in ("source_system", "adapter_id", "source_received_at")]
    schema["description"] = ("A ticket in the national standard (contracts/schema/ticket.schema.json), as a canonical "
                             "adapter takes it: ticket_id, lifecycle and routing are the gateway's; source.adapter_id, "
                             "source_system and source_received_at are filled in when absent.")
    return schema
