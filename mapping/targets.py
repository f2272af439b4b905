"""The fields a spec may write: every field of the canonical Ticket, found by walking its models."""

from __future__ import annotations

import functools
import types
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter

from contracts.ticket import Ticket

# Set by the engine itself, never by a spec.
RESERVED_TARGETS = {
    "schema_version": "the contract's version is fixed",
    "ticket_id": "the gateway gives each ticket its own id",
    "idempotency_key": "derived from source_system, source_ticket_no and source_version",
    "source.source_system": "taken from the spec's source_system",
    "source.adapter_id": "taken from the spec's adapter_id",
}

# The national code table behind each coded field, so a crosswalk can be checked against its target.
TARGET_TABLES = {
    "classification.business_type": "business_type",
    "classification.channel": "channel",
    "classification.origin_hotline": "origin_hotline",
    "classification.urgency": "urgency",
    "complainant.gender": "gender",
    "complainant.id_type": "id_type",
    "respondent.entity_type_code": "entity_type",
    "respondent.industry_code": "industry_category",
    "subject.object_category_code": "object_category",
    "problem.question_category_code": "question_category",
    "problem.tort_type_code": "tort_type",
    "occurrence.location.coordinate_system": "coordinate_system",
    "routing.handler_level": "handler_level",
    "lifecycle.status": "status",
    "lifecycle.not_accepted_reason": "not_accepted_reason",
    "lifecycle.follow_up.satisfaction": "satisfaction",
}


@dataclass(frozen=True)
class TargetField:
    """One writable field: its dotted path, and what kind of value it takes."""

    path: str
    annotation: Any
    model: type[BaseModel] | None  # a nested group (written through its own fields)
    item_model: type[BaseModel] | None  # a list of groups (written with `each`)
    is_list: bool
    takes_text: bool

    @functools.cached_property
    def adapter(self) -> TypeAdapter[Any]:
        return TypeAdapter(self.annotation)


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return annotation


def _base(annotation: Any) -> Any:
    annotation = _unwrap_optional(annotation)
    while get_origin(annotation) is Annotated:
        annotation = _unwrap_optional(get_args(annotation)[0])
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _walk(model: type[BaseModel], prefix: str, found: dict[str, TargetField]) -> None:
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        base = _base(info.annotation)
        is_list = get_origin(base) is list
        item = _base(get_args(base)[0]) if is_list and get_args(base) else None
        found[path] = TargetField(
            path=path,
            annotation=annotation,
            model=base if _is_model(base) else None,
            item_model=item if _is_model(item) else None,
            is_list=is_list,
            takes_text=base is str or (is_list and item is str),
        )
        if _is_model(base):
            _walk(base, f"{path}.", found)


@functools.cache
def target_fields(model: type[BaseModel] = Ticket) -> dict[str, TargetField]:
    """Every field of `model` and of the groups inside it, by dotted path (lists of groups are not entered)."""
    found: dict[str, TargetField] = {}
    _walk(model, "", found)
    return found


@functools.cache
def item_fields(model: type[BaseModel]) -> dict[str, TargetField]:
    """The fields of one item of a list of groups (e.g. an attachment), relative to the item."""
    return target_fields(model)
