"""What every step shares: the step and pipeline types, a step kind, the build context, step errors, the runner."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal
from typing import Any

from contracts.codetables import CodeTables, Crosswalk

# A note is something a step wants the user to know without failing: (rule, message, value).
Note = tuple[str, str, Any]
Step = Callable[[Any, list[Note]], Any]
Pipeline = tuple[tuple[Step, bool], ...]  # each step with whether it takes a list whole


# StepError and SpecProblem stay inside the mapping layer: the engine turns a StepError into a FieldError,
# the spec compiler turns a SpecProblem into a SpecError line, so neither reaches a caller of `mapping`.
class StepError(Exception):
    """A value a step cannot turn into what the target needs; becomes one FieldError."""

    def __init__(self, rule: str, message: str, value: Any = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.value = value


class SpecProblem(Exception):
    """A transform written wrongly in a spec; `at` is the key path below the transform, if any."""

    def __init__(self, message: str, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.at = at


@dataclass(frozen=True)
class StepContext:
    """What building a step may consult: the spec's zone, its crosswalks and the national tables."""

    zone: tzinfo
    crosswalks: Mapping[str, Crosswalk]
    tables: CodeTables
    # Steps a spec declares in `steps:` so several fields can share one pipeline by name.
    named: Mapping[str, Pipeline] = field(default_factory=dict)


_EMPTIABLE = (str, list, dict)


def is_absent(value: Any) -> bool:
    """Nothing usable: None, empty text, an empty list or object. Zero and False are values."""
    return value is None or (isinstance(value, str | list | dict) and not value)


def kind_of(value: Any) -> str:
    """What a value is, as an error message says it ("an object", "a list", "true/false", "int")."""
    return {dict: "an object", list: "a list", bool: "true/false"}.get(type(value), type(value).__name__)


def text_of(value: Any, rule: str) -> str:
    """The value as text (a whole number or decimal is written out); StepError under `rule` otherwise."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return str(value)
    raise StepError(rule, f"expected text, got {kind_of(value)}", value)


@dataclass(frozen=True)
class StepKind:
    """One transform a spec can name: how it is built from its YAML and what it accepts there."""

    build: Callable[[Any, dict[str, Any], StepContext], Step]
    options: frozenset[str] = frozenset()
    takes_argument: bool = False  # `name: argument` is required
    whole_list: bool = False  # works on a list as a whole instead of on each item
    summary: str = ""


def chain_steps(built: list[tuple[Step, bool]]) -> Pipeline:
    """The steps of one pipeline, each marked with whether it takes a list whole (join, first)."""
    return tuple(built)


# Anything a step meets in hostile input turns into a StepError, never an exception that escapes.
_STEP_FAILURES = (ValueError, TypeError, ArithmeticError, OverflowError, OSError, IndexError, KeyError, RecursionError)


def run_steps(pipeline: Pipeline, value: Any, notes: list[Note]) -> Any:
    """Run a pipeline; a list value goes item by item through item-wise steps, dropping what becomes empty.
    The pipeline stops at the first step that leaves nothing."""
    for step, whole_list in pipeline:
        if value is None or (type(value) in _EMPTIABLE and not value):  # is_absent, inlined on the hot path
            return None
        try:
            if whole_list or not isinstance(value, list):
                value = step(value, notes)
            else:
                results = [step(item, notes) for item in value if not is_absent(item)]
                value = [item for item in results if not is_absent(item)]
        except StepError:
            raise
        except _STEP_FAILURES as err:
            raise StepError("invalid_value", f"cannot transform {kind_of(value)}: {err}", value) from None
    return None if is_absent(value) else value
