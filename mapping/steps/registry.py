"""Every step kind by name, and building one step from its YAML form."""

from __future__ import annotations

from typing import Any

from mapping.steps.codes import CODE_STEPS
from mapping.steps.dates import DATE_STEPS
from mapping.steps.identifiers import IDENTIFIER_STEPS
from mapping.steps.numbers import NUMBER_STEPS
from mapping.steps.pipeline import Note, SpecProblem, Step, StepContext, StepKind, run_steps
from mapping.steps.text import TEXT_STEPS


def _named(arg: Any, options: dict[str, Any], ctx: StepContext) -> Step:
    if not isinstance(arg, str) or arg not in ctx.named:
        raise SpecProblem(f"no pipeline {arg!r} under steps:; known: {', '.join(ctx.named) or 'none'}")
    pipeline = ctx.named[arg]

    def use(value: Any, notes: list[Note]) -> Any:
        return run_steps(pipeline, value, notes)

    return use


# The order is the order of the "known:" list in an unknown-transform message.
STEP_KINDS: dict[str, StepKind] = {
    **TEXT_STEPS,
    **NUMBER_STEPS,
    **DATE_STEPS,
    **IDENTIFIER_STEPS,
    **CODE_STEPS,
    "use": StepKind(_named, takes_argument=True, summary="a pipeline declared under steps:"),
}


def build_step(item: Any, ctx: StepContext) -> tuple[Step, bool]:
    """One transform from its YAML form: `name`, or `{name: argument, option: value, ...}`.

    Returns the step and whether it works on a whole list."""
    arg: Any
    options: dict[str, Any]
    if isinstance(item, str):
        name, arg, options = item, None, {}
    elif isinstance(item, dict) and item:
        name, arg = next(iter(item.items()))
        options = {key: value for key, value in item.items() if key != name}
    else:
        raise SpecProblem("a transform is a name (trim) or a mapping (truncate: 4000)")
    if not isinstance(name, str) or name not in STEP_KINDS:
        raise SpecProblem(f"unknown transform {name!r}; known: {', '.join(STEP_KINDS)}")
    kind = STEP_KINDS[name]
    if not kind.takes_argument and isinstance(arg, dict) and not options:
        arg, options = None, dict(arg)  # {fold: {lines: true}}: options under the name
    if kind.takes_argument and arg is None:
        raise SpecProblem(f"{name} needs an argument ({kind.summary})", (name,))
    for option in options:
        if option not in kind.options:
            allowed = ", ".join(sorted(kind.options)) or "none"
            raise SpecProblem(f"transform {name} has no option {option!r} (options: {allowed})", (str(option),))
    try:
        step = kind.build(arg, options, ctx)
    except SpecProblem as problem:
        raise SpecProblem(problem.message, (name, *problem.at) if not problem.at else problem.at) from None
    return step, kind.whole_list
