"""`when` conditions of a mapping spec, compiled into predicates that never raise."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from mapping.paths import PathSyntaxError, compile_path
from mapping.steps import (
    Note,
    Pipeline,
    SpecProblem,
    StepContext,
    StepError,
    build_step,
    chain_steps,
    is_absent,
    run_steps,
)

Predicate = Callable[[Any], bool]

TESTS = ("equals", "in", "not_in", "present", "absent", "matches")
COMBINATORS = ("all", "any", "not")


def _comparable(value: Any) -> str | None:
    # Partners send codes as numbers or text ("05" and 5 are not the same code, 5 and "5" are).
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | Decimal):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return value.strip()
    return None


def _values(test: str, arg: Any) -> frozenset[str]:
    items = arg if isinstance(arg, list) else [arg]
    found = set()
    for item in items:
        text = _comparable(item)
        if text is None:
            raise SpecProblem(f"{test} compares with text or numbers, got {item!r}", (test,))
        found.add(text)
    return frozenset(found)


def compile_condition(node: Any, ctx: StepContext) -> Predicate:
    """`{path: aim, in: [建议, 求助]}`, `{all: [...]}`, `{any: [...]}`, `{not: {...}}`."""
    if not isinstance(node, dict) or not node:
        raise SpecProblem("a condition is a mapping such as {path: aim, in: [建议, 求助]}")
    combinators = [key for key in COMBINATORS if key in node]
    if combinators:
        if len(node) != 1:
            raise SpecProblem(f"{combinators[0]} stands alone in its condition")
        key = combinators[0]
        if key == "not":
            inner = _nested(node["not"], ctx, ("not",))
            return lambda payload: not inner(payload)
        parts = node[key]
        if not isinstance(parts, list) or not parts:
            raise SpecProblem(f"{key} takes a list of conditions", (key,))
        predicates = [_nested(part, ctx, (key, i)) for i, part in enumerate(parts)]
        if key == "all":
            return lambda payload: all(predicate(payload) for predicate in predicates)
        return lambda payload: any(predicate(payload) for predicate in predicates)
    return _test(node, ctx)


def _nested(node: Any, ctx: StepContext, at: tuple[str | int, ...]) -> Predicate:
    try:
        return compile_condition(node, ctx)
    except SpecProblem as problem:
        raise SpecProblem(problem.message, at + problem.at) from None


def _test(node: dict[str, Any], ctx: StepContext) -> Predicate:
    unknown = [key for key in node if key not in ("path", "transforms", *TESTS)]
    if unknown:
        raise SpecProblem(
            f"unknown key {unknown[0]!r} in a condition (keys: path, transforms, {', '.join(TESTS)}, "
            f"or one of {', '.join(COMBINATORS)})",
            (str(unknown[0]),),
        )
    if "path" not in node:
        raise SpecProblem("a condition names the path it tests, e.g. {path: aim, in: [建议]}")
    try:
        getter = compile_path(node["path"])
    except PathSyntaxError as err:
        raise SpecProblem(str(err), ("path",)) from None
    steps = _steps(node.get("transforms"), ctx)
    tests = [key for key in TESTS if key in node]
    if len(tests) != 1:
        raise SpecProblem(f"a condition makes exactly one test: {', '.join(TESTS)}")
    test, arg = tests[0], node[tests[0]]

    def value_of(payload: Any) -> Any:
        value = getter(payload)
        if steps:
            try:
                value = run_steps(steps, value, [])
            except StepError:
                return None  # a value that cannot be read does not meet any test but `absent`
        return value

    if test in ("present", "absent"):
        if not isinstance(arg, bool):
            raise SpecProblem(f"{test} takes true or false", (test,))
        wanted = arg if test == "present" else not arg
        return lambda payload: (not is_absent(value_of(payload))) is wanted
    if test == "matches":
        if not isinstance(arg, str):
            raise SpecProblem("matches takes a regular expression", (test,))
        try:
            pattern = re.compile(arg)
        except re.error as err:
            raise SpecProblem(f"matches: not a regular expression: {err}", (test,)) from None

        def matches(payload: Any) -> bool:
            text = _comparable(value_of(payload))
            return text is not None and pattern.search(text) is not None

        return matches
    values = _values(test, arg)
    negate = test == "not_in"

    def compare(payload: Any) -> bool:
        value = value_of(payload)
        if negate and is_absent(value):
            return False  # not_in means "given, and none of these"
        items = value if isinstance(value, list) else [value]
        hit = any(_comparable(item) in values for item in items)
        return hit is not negate

    return compare


def _steps(node: Any, ctx: StepContext) -> Pipeline:
    if node is None:
        return ()
    if not isinstance(node, list):
        raise SpecProblem("transforms is a list", ("transforms",))
    built = []
    for i, item in enumerate(node):
        try:
            built.append(build_step(item, ctx))
        except SpecProblem as problem:
            raise SpecProblem(problem.message, ("transforms", i, *problem.at)) from None
    return chain_steps(built)


def safe(predicate: Predicate) -> Predicate:
    """A predicate that answers False instead of raising, whatever the payload holds."""

    def guarded(payload: Any) -> bool:
        try:
            return predicate(payload)
        except Exception:  # a condition on hostile input is simply not met
            return False

    return guarded


__all__ = ["Note", "Predicate", "compile_condition", "safe"]
