"""Compiling one rule of a spec (a path, constant, concat or template with its transforms) into a producer."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from contracts.yamldoc import YamlDocument
from mapping.conditions import Predicate, compile_condition, safe
from mapping.paths import PathSyntaxError, compile_path
from mapping.spec import Produce
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
from mapping.targets import TARGET_TABLES, TargetField

Loc = tuple[str | int, ...]

_SOURCE_KEYS = ("path", "const", "concat", "template")
_RULE_KEYS = {*_SOURCE_KEYS, "transforms", "default", "when", "required", "sep", "prefix", "each", "fields"}
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class Skip(Exception):
    """A part of the spec already reported as a problem; compiling goes on with the next part."""


class RuleCompiler:
    """Compiles rules, transforms and conditions of one spec document, collecting each problem at its line."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.problems: list[str] = []

    def problem(self, at: Loc, message: str) -> None:
        self.problems.append(str(self.doc.error(at, message)))

    def _rule(self, rule: Any, ctx: StepContext, at: Loc, target: TargetField | None) -> tuple[Produce, str | None]:
        """Compile one rule (or a list of alternatives) into a producer and its source description."""
        if isinstance(rule, list):
            if not rule:
                self.problem(at, "a list of alternatives needs at least one rule")
                raise Skip
            compiled = [self._rule(item, ctx, (*at, i), target) for i, item in enumerate(rule)]
            producers = [produce for produce, _ in compiled]
            sources = [source for _, source in compiled if source]

            def first_of(payload: Any, notes: list[Note]) -> Any:
                for produce in producers:
                    value = produce(payload, notes)
                    if value is not None:
                        return value
                return None

            return first_of, " | ".join(dict.fromkeys(sources)) or None
        if isinstance(rule, str):
            rule = {"path": rule}
        if isinstance(rule, bool):
            self.problem(at, "YAML read this rule as true/false (yes, no, on and off are booleans): quote the path")
            raise Skip
        if not isinstance(rule, dict):
            self.problem(at, "a rule is a source path, a mapping with path/const/concat/template, or a list of them")
            raise Skip
        unknown = [key for key in rule if key not in _RULE_KEYS]
        if unknown:
            self.problem((*at, unknown[0]), f"unknown key in a rule; rules have {', '.join(sorted(_RULE_KEYS))}")
            raise Skip
        sources = [key for key in _SOURCE_KEYS if key in rule]
        if len(sources) != 1:
            self.problem(at, "a rule has exactly one source: path, const, concat or template")
            raise Skip
        kind = sources[0]
        if kind != "concat" and ("sep" in rule or "prefix" in rule):
            self.problem((*at, "sep" if "sep" in rule else "prefix"), "sep and prefix go with concat")
            raise Skip
        read, source = self._source(kind, rule, ctx, at)
        steps = self._pipeline(rule.get("transforms", []), ctx, (*at, "transforms"))
        when = self._when(rule.get("when"), ctx, (*at, "when")) if "when" in rule else None
        has_default = "default" in rule
        default = rule.get("default")
        if target is not None:
            self._check_value(target, kind, rule, at)
            self._check_crosswalk(target, rule.get("transforms", []), ctx, at)
        required = rule.get("required", False)
        if not isinstance(required, bool):
            self.problem((*at, "required"), "required is true or false")
            raise Skip
        described = source or "(constant)"
        if when is None and not has_default and not required:
            lean = _lean(kind, rule, steps)
            if lean is not None:
                return lean, source

        def produce(payload: Any, notes: list[Note]) -> Any:
            if when is not None and not when(payload):
                return None
            value = read(payload, notes)
            if steps:
                value = run_steps(steps, value, notes)
            elif is_absent(value):
                value = None
            if value is None and has_default:
                value = default
            if value is None and required:
                raise StepError("required", f"{described} is required and was not given", None)
            return value

        return produce, source

    def _source(self, kind: str, rule: dict[str, Any], ctx: StepContext, at: Loc) -> tuple[Produce, str | None]:
        if kind == "path":
            try:
                getter = compile_path(rule["path"])
            except PathSyntaxError as err:
                self.problem((*at, "path"), str(err))
                raise Skip from None
            return (lambda payload, notes: getter(payload)), rule["path"]
        if kind == "const":
            constant = rule["const"]
            return (lambda payload, notes: constant), None
        if kind == "template":
            render, paths = self._template(rule["template"], (*at, "template"), missing=None)
            return (lambda payload, notes: render(payload)), ", ".join(paths) or None
        return self._concat(rule, ctx, at)

    def _concat(self, rule: dict[str, Any], ctx: StepContext, at: Loc) -> tuple[Produce, str | None]:
        items = rule["concat"]
        if not isinstance(items, list) or not items:
            self.problem((*at, "concat"), "concat takes a list of paths or rules")
            raise Skip
        separator = rule.get("sep", "")
        prefix = rule.get("prefix", "")
        if not isinstance(separator, str) or not isinstance(prefix, str):
            self.problem(at, "sep and prefix are text")
            raise Skip
        parts = [self._rule(item, ctx, (*at, "concat", i), None) for i, item in enumerate(items)]
        producers = [produce for produce, _ in parts]

        def concat(payload: Any, notes: list[Note]) -> Any:
            texts = []
            for produce in producers:
                value = produce(payload, notes)
                if not is_absent(value):
                    texts.append(_as_text(value))
            return prefix + separator.join(texts) if texts else None

        return concat, " + ".join(source for _, source in parts if source) or None

    def _template(self, template: Any, at: Loc, missing: str | None) -> tuple[Callable[[Any], Any], list[str]]:
        """`死亡{incident.casualties.death}人`: absent when a placeholder is absent (unless `missing` is given)."""
        if not isinstance(template, str):
            self.problem(at, "a template is text with {path} placeholders")
            raise Skip
        pieces: list[str | Callable[[Any], Any]] = []
        paths: list[str] = []
        position = 0
        for match in _PLACEHOLDER.finditer(template):
            pieces.append(template[position:match.start()])
            position = match.end()
            if match.group(1) is None:
                pieces.append(match.group(0)[0])
                continue
            try:
                pieces.append(compile_path(match.group(1)))
            except PathSyntaxError as err:
                self.problem(at, f"placeholder {match.group(0)}: {err}")
                raise Skip from None
            paths.append(match.group(1))
        pieces.append(template[position:])

        def render(payload: Any) -> Any:
            out = []
            for piece in pieces:
                if isinstance(piece, str):
                    out.append(piece)
                    continue
                value = piece(payload)
                if not is_absent(value):
                    try:
                        out.append(_as_text(value))
                        continue
                    except (StepError, ValueError):
                        if missing is None:
                            raise  # a field reading the template reports it; a reason text does without
                if missing is None:
                    return None
                out.append(missing)
            return "".join(out)

        return render, paths

    def _pipeline(self, node: Any, ctx: StepContext, at: Loc) -> Pipeline:
        if not isinstance(node, list):
            self.problem(at, "transforms is a list such as [trim, {truncate: 4000}]")
            raise Skip
        built = []
        failed = False
        for i, item in enumerate(node):
            try:
                built.append(build_step(item, ctx))
            except SpecProblem as problem:
                self.problem((*at, i, *problem.at), problem.message)
                failed = True
        if failed:
            raise Skip
        return chain_steps(built)

    def _when(self, node: Any, ctx: StepContext, at: Loc) -> Predicate:
        try:
            return safe(compile_condition(node, ctx))
        except SpecProblem as problem:
            self.problem((*at, *problem.at), problem.message)
            raise Skip from None

    def _check_value(self, target: TargetField, kind: str, rule: dict[str, Any], at: Loc) -> None:
        """A constant or default must itself be a valid value of its target field."""
        for key in ("const", "default"):
            if key == "const" and kind != "const":
                continue
            if key not in rule or rule[key] is None:
                continue
            try:
                target.adapter.validate_python(rule[key])
            except ValidationError as err:
                reason = err.errors(include_url=False)[0]["msg"]
                self.problem((*at, key), f"{rule[key]!r} is not a valid {target.path}: {reason}")
                raise Skip from None

    def _check_crosswalk(self, target: TargetField, transforms: Any, ctx: StepContext, at: Loc) -> None:
        """The last lookup in a pipeline must give codes of the table its target field takes."""
        table = TARGET_TABLES.get(target.path)
        if table is None or not isinstance(transforms, list):
            return
        for i, item in enumerate(transforms):
            if isinstance(item, dict) and "lookup" in item and item["lookup"] in ctx.crosswalks:
                crosswalk = ctx.crosswalks[item["lookup"]]
                if crosswalk.table != table:
                    self.problem(
                        (*at, "transforms", i),
                        f"crosswalk {crosswalk.crosswalk} gives codes of table {crosswalk.table}, "
                        f"but {target.path} takes codes of table {table}",
                    )
            if isinstance(item, dict) and "code" in item and item["code"] != table and item["code"] in ctx.tables:
                self.problem((*at, "transforms", i), f"{target.path} takes codes of table {table}, not {item['code']}")


def _lean(kind: str, rule: dict[str, Any], steps: Pipeline) -> Produce | None:
    """The common rules (a path and its transforms, or a constant) without the layers they do not use."""
    if kind == "const":
        constant = rule["const"]
        return lambda payload, notes: constant
    if kind != "path":
        return None
    get = compile_path(rule["path"])
    if steps:
        return lambda payload, notes: run_steps(steps, get(payload), notes)

    def plain(payload: Any, notes: list[Note]) -> Any:
        value = get(payload)
        return None if is_absent(value) else value

    return plain


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    if isinstance(value, dict | list):
        raise StepError("invalid_text", "expected text, got an object or a list", None)
    return str(value)
