"""Identifier steps: phone, ID, credit and region codes, by the rules of contracts.identifiers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.identifiers import (
    IdentifierError,
    classify_enterprise_code,
    lookup_region,
    normalize_phone,
    normalize_resident_id,
    region_by_name,
    validate_uscc,
)
from mapping.steps.pipeline import Note, SpecProblem, Step, StepContext, StepError, StepKind, text_of


def _identifier(check: Callable[[str], str], rule: str) -> Callable[[Any, dict[str, Any], StepContext], Step]:
    def build(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
        def run(value: Any, notes: list[Note]) -> Any:
            try:
                return check(text_of(value, rule))
            except IdentifierError as err:
                raise StepError(rule, err.reason, value) from None

        return run

    return build


_ENTERPRISE_KINDS = ("uscc", "registration_no", "org_code")


def _enterprise_code(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    """One field that may hold a USCC, an old 注册号, an 组织机构代码 or "无": keep only the kind asked for."""
    if arg not in _ENTERPRISE_KINDS:
        raise SpecProblem(f"enterprise_code takes the kind to keep: one of {', '.join(_ENTERPRISE_KINDS)}")
    wanted = arg

    def enterprise_code(value: Any, notes: list[Note]) -> Any:
        try:
            code = classify_enterprise_code(text_of(value, "invalid_enterprise_code"))
        except IdentifierError as err:
            raise StepError(f"invalid_{err.kind}", err.reason, value) from None
        return code.value if code is not None and code.kind == wanted else None

    return enterprise_code


def _region_code(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    def region_code(value: Any, notes: list[Note]) -> Any:
        try:
            return lookup_region(text_of(value, "invalid_region_code")).code
        except IdentifierError as err:
            raise StepError("invalid_region_code", err.reason, value) from None

    return region_code


def _region_by_name(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    within = options.get("within", arg)
    if within is not None:
        if not isinstance(within, str):
            raise SpecProblem("within is a region code or name in quotes, e.g. within: '522600'")
        try:
            scope = lookup_region(within) if within.isdigit() else region_by_name(within)
        except IdentifierError as err:
            raise SpecProblem(f"within: {err.reason}") from None
        within = scope.code

    def to_region(value: Any, notes: list[Note]) -> Any:
        try:
            return region_by_name(text_of(value, "invalid_region_name"), within).code
        except IdentifierError as err:
            raise StepError("invalid_region_name", err.reason, value) from None

    return to_region


IDENTIFIER_STEPS: dict[str, StepKind] = {
    "phone": StepKind(_identifier(normalize_phone, "invalid_phone"), summary="a phone number in E.164"),
    "resident_id": StepKind(_identifier(normalize_resident_id, "invalid_resident_id"),
                            summary="an 18-character ID number (15-digit ones upgraded)"),
    "uscc": StepKind(_identifier(validate_uscc, "invalid_uscc"), summary="a checked unified social credit code"),
    "enterprise_code": StepKind(_enterprise_code, takes_argument=True,
                                summary="keep a USCC / 注册号 / 组织机构代码 of the kind named; 无 is absent"),
    "region_code": StepKind(_region_code, summary="a checked GB/T 2260 region code"),
    "region_by_name": StepKind(_region_by_name, frozenset({"within"}),
                               summary="a region name (凯里市, 镇远) to its code, within a region"),
}
