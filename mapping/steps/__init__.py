"""Transforms a mapping spec can apply to a value: each is built once from its YAML and then only runs."""

from mapping.steps.dates import DATE_ONLY_FORMATS, DEFAULT_DATETIME_FORMATS, parse_zone
from mapping.steps.pipeline import (
    Note,
    Pipeline,
    SpecProblem,
    Step,
    StepContext,
    StepError,
    StepKind,
    chain_steps,
    is_absent,
    run_steps,
)
from mapping.steps.registry import STEP_KINDS, build_step

__all__ = [
    "DATE_ONLY_FORMATS",
    "DEFAULT_DATETIME_FORMATS",
    "STEP_KINDS",
    "Note",
    "Pipeline",
    "SpecProblem",
    "Step",
    "StepContext",
    "StepError",
    "StepKind",
    "build_step",
    "chain_steps",
    "is_absent",
    "parse_zone",
    "run_steps",
]
