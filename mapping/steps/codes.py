"""Code steps: inline value maps, partner crosswalks and national code tables."""

from __future__ import annotations

from typing import Any

from contracts.codetables import CrosswalkOutcome
from mapping.steps.pipeline import Note, SpecProblem, Step, StepContext, StepError, StepKind


def _key(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return None


_UNMAPPED_MAP = ("error", "drop", "keep")


def _map(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    """A small inline table of values (男 → '1'); a code list that changes belongs in a crosswalk file."""
    if not isinstance(arg, dict) or not arg:
        raise SpecProblem("map takes a mapping of partner values to values, e.g. map: {男: '1', 女: '2'}")
    table: dict[str, Any] = {}
    for key, mapped in arg.items():
        text = _key(key)
        if text is None:
            raise SpecProblem(f"map key {key!r} must be text or a number", (str(key),))
        table[text] = mapped
    has_default = "default" in options
    default = options.get("default")
    unmapped = options.get("unmapped", "error")
    if unmapped not in _UNMAPPED_MAP:
        raise SpecProblem(f"unmapped must be one of {', '.join(_UNMAPPED_MAP)}", ("unmapped",))
    if has_default and "unmapped" in options:
        raise SpecProblem("give either default (use it for unknown values) or unmapped, not both", ("default",))
    known = ", ".join(table)

    def map_value(value: Any, notes: list[Note]) -> Any:
        key = _key(value)
        if key is not None and key in table:
            return table[key]
        if has_default:
            return default
        if unmapped == "drop":
            return None
        if unmapped == "keep":
            return value
        raise StepError("unmapped_value", f"{value!r} is not one of the known values ({known})", value)

    return map_value


def _lookup(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str) or arg not in ctx.crosswalks:
        known = ", ".join(sorted(ctx.crosswalks)) or "none (add files under crosswalks/<source_system>/)"
        raise SpecProblem(f"unknown crosswalk {arg!r}; this spec's crosswalks: {known}")
    crosswalk = ctx.crosswalks[arg]
    # The mapped case is a plain dict look-up; the crosswalk itself decides (and words) the unmapped rule.
    codes = {entry.partner_code: entry.code for entry in crosswalk.entries}

    def lookup(value: Any, notes: list[Note]) -> Any:
        key = _key(value) if not isinstance(value, bool) else None
        if key is not None and key in codes:
            return codes[key]
        result = crosswalk.lookup(value)
        if result.outcome is CrosswalkOutcome.MAPPED:
            return result.code
        if result.outcome is CrosswalkOutcome.DEFAULTED:
            notes.append(("unmapped_defaulted", result.message, value))
            return result.code
        if result.outcome is CrosswalkOutcome.KEPT:
            notes.append(("unmapped_kept", result.message, value))
            return None
        raise StepError("unmapped_code", result.message, value)

    return lookup


def _code(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str) or arg not in ctx.tables:
        raise SpecProblem(f"unknown code table {arg!r}; known: {', '.join(ctx.tables)}")
    table = ctx.tables[arg]

    def code(value: Any, notes: list[Note]) -> Any:
        key = _key(value)
        if key is None or key not in table:
            raise StepError("unknown_code", f"{value!r} is not a code of table {table.table}", value)
        return key

    return code


CODE_STEPS: dict[str, StepKind] = {
    "map": StepKind(_map, frozenset({"unmapped", "default"}), takes_argument=True,
                    summary="an inline table of values; unmapped: error | drop | keep, or a default"),
    "lookup": StepKind(_lookup, takes_argument=True, summary="a crosswalk of this partner's codes to national codes"),
    "code": StepKind(_code, takes_argument=True, summary="require a code of a national code table"),
}
