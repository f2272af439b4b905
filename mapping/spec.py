"""Mapping specs: one YAML file per adapter, checked at load and compiled once into plans of closures."""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from contracts.codesets import NotAcceptedReason, Status
from contracts.codetables import CodeTableError, CodeTables, Crosswalk, default_code_tables, load_crosswalk
from contracts.yamldoc import YamlDocument, YamlDocumentError, parse_yaml_document, render_key
from mapping.conditions import Predicate, compile_condition, safe
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
    parse_zone,
    run_steps,
)
from mapping.targets import RESERVED_TARGETS, TARGET_TABLES, TargetField, item_fields, target_fields

SPECS_DIR = Path(__file__).resolve().parent / "specs"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
SPEC_VERSION = 1
DEFAULT_ZONE = "+08:00"

Produce = Callable[[Any, list[Note]], Any]
Loc = tuple[str | int, ...]

_TOP_KEYS = {
    "spec_version", "adapter_id", "source_system", "title", "description", "timezone", "xml_record",
    "steps", "return_when", "fields", "reverse",
}
_SOURCE_KEYS = ("path", "const", "concat", "template")
_RULE_KEYS = {*_SOURCE_KEYS, "transforms", "default", "when", "required", "sep", "prefix", "each", "fields"}
_SYSTEM_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_PARTNER_KEY = re.compile(r"^[^.\[\]\s]+(\.[^.\[\]\s]+)*$")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class SpecError(ValueError):
    """A spec that cannot be used: every problem found, each naming file, line and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class FieldPlan:
    """One target field and how to fill it; `items` is set for a list of groups written with `each`."""

    target: str
    keys: tuple[str, ...]
    source: str | None
    produce: Produce
    coerce: Callable[[Any], Any] | None  # numbers to text, one value to a list, as the target needs
    items: tuple[FieldPlan, ...] = ()
    each: Callable[[Any], list[Any]] | None = None


@dataclass(frozen=True)
class ReturnRule:
    """Return the ticket to its sender (退单) when `when` holds, with a national not-accepted reason."""

    when: Predicate
    reason_code: NotAcceptedReason
    reason: Callable[[Any], str]


@dataclass(frozen=True)
class ReversePlan:
    """National status and result → the partner's status code and callback fields."""

    status_keys: tuple[str, ...]
    status_codes: Mapping[Status, Any]
    fields: tuple[FieldPlan, ...]


@dataclass(frozen=True)
class MappingSpec:
    """A compiled spec; build it with `load_spec`, run it with `mapping.apply` and `mapping.reverse`."""

    adapter_id: str
    source_system: str
    title: str
    file: str
    zone: tzinfo
    xml_record: str | None
    plans: tuple[FieldPlan, ...]
    returns: tuple[ReturnRule, ...]
    reverse: ReversePlan | None
    sources: Mapping[str, str]  # target field → the source path(s) it reads, for error messages
    crosswalks: Mapping[str, Crosswalk] = field(default_factory=dict)
    ticket_no: FieldPlan | None = None


# ---------------------------------------------------------------------------------------------------
# Loading


def load_spec(path: Path, tables: CodeTables | None = None) -> MappingSpec:
    """Read, check and compile one spec; its crosswalks are read from crosswalks/<source_system>/ beside it.

    Raises SpecError listing every problem as `file:line: key: message`."""
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SpecError([f"{file}: cannot read the spec: {err}"]) from err
    try:
        doc, duplicates = parse_yaml_document(text, file)
    except YamlDocumentError as err:
        raise SpecError([str(err)]) from err
    if duplicates:
        # A target said twice would silently drop one rule.
        raise SpecError([str(YamlDocumentError(file, message, key=render_key(at), line=line))
                         for at, line, message in duplicates])
    return _Compiler(doc, path, tables or default_code_tables()).compile()


def load_specs(directory: Path = SPECS_DIR, tables: CodeTables | None = None) -> dict[str, MappingSpec]:
    """Every `*.yaml` spec in `directory`, by adapter id; SpecError lists the problems of every file."""
    specs: dict[str, MappingSpec] = {}
    problems: list[str] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            spec = load_spec(path, tables)
        except SpecError as err:
            problems.extend(err.problems)
            continue
        specs[spec.adapter_id] = spec
    if problems:
        raise SpecError(problems)
    return specs


@functools.cache
def default_specs() -> dict[str, MappingSpec]:
    """The shipped specs, compiled once per process."""
    return load_specs()


def spec_for(adapter_id: str, directory: Path | None = None) -> MappingSpec:
    """The spec of one adapter: `<directory>/<adapter_id>.yaml` (default: the shipped specs)."""
    if directory is None:
        specs = default_specs()
        if adapter_id not in specs:
            raise SpecError([f"{SPECS_DIR}: no mapping spec for adapter {adapter_id!r}; known: {', '.join(specs)}"])
        return specs[adapter_id]
    path = directory / f"{adapter_id}.yaml"
    if not path.is_file():
        raise SpecError([f"{path}: no mapping spec for adapter {adapter_id!r}"])
    return load_spec(path)


# ---------------------------------------------------------------------------------------------------
# Compiling


class _Skip(Exception):
    """A part of the spec already reported as a problem; compiling goes on with the next part."""


class _Compiler:
    def __init__(self, doc: YamlDocument, path: Path, tables: CodeTables) -> None:
        self.doc = doc
        self.path = path
        self.tables = tables
        self.problems: list[str] = []
        self.sources: dict[str, str] = {}

    def problem(self, at: Loc, message: str) -> None:
        self.problems.append(str(self.doc.error(at, message)))

    def compile(self) -> MappingSpec:
        data = self.doc.data
        if not isinstance(data, dict):
            raise SpecError([str(self.doc.error((), "a spec is a mapping with adapter_id, source_system and fields"))])
        for key in data:
            if key not in _TOP_KEYS:
                self.problem((key,), f"unknown key; a spec has {', '.join(sorted(_TOP_KEYS))}")
        if data.get("spec_version") != SPEC_VERSION:
            self.problem(("spec_version",), f"spec_version must be {SPEC_VERSION}")
        adapter_id = self._system_id(data, "adapter_id")
        source_system = self._system_id(data, "source_system")
        if adapter_id and adapter_id != self.path.stem:
            self.problem(("adapter_id",), f"adapter_id {adapter_id!r} must match the file name {self.path.name}")
        title = data.get("title", adapter_id)
        zone = self._zone(data.get("timezone", DEFAULT_ZONE))
        xml_record = data.get("xml_record")
        if xml_record is not None and not (isinstance(xml_record, str) and xml_record.strip()):
            self.problem(("xml_record",), "xml_record is the name of the XML element holding one ticket")
            xml_record = None
        crosswalks = self._crosswalks(source_system) if source_system else {}
        ctx = StepContext(zone=zone, crosswalks=crosswalks, tables=self.tables, named={})
        ctx = StepContext(zone=zone, crosswalks=crosswalks, tables=self.tables, named=self._named_steps(data, ctx))

        plans = self._fields(data.get("fields"), ctx)
        returns = self._returns(data.get("return_when"), ctx)
        reverse = self._reverse(data.get("reverse"), ctx) if "reverse" in data else None
        if self.problems:
            raise SpecError(self.problems)
        assert adapter_id is not None and source_system is not None
        return MappingSpec(
            adapter_id=adapter_id,
            source_system=source_system,
            title=str(title),
            file=str(self.path),
            zone=zone,
            xml_record=xml_record,
            plans=tuple(plans),
            returns=tuple(returns),
            reverse=reverse,
            sources=dict(self.sources),
            crosswalks=crosswalks,
            ticket_no=next((plan for plan in plans if plan.target == "source.source_ticket_no"), None),
        )

    # -- header ------------------------------------------------------------------------------------

    def _system_id(self, data: dict[str, Any], key: str) -> str | None:
        value = data.get(key)
        if not isinstance(value, str) or not _SYSTEM_ID.match(value) or len(value) > 64:
            self.problem((key,), f"{key} is required: lower-case letters, digits, - and _ (e.g. city-12345-rest)")
            return None
        return value

    def _zone(self, value: Any) -> tzinfo:
        try:
            return parse_zone(value)
        except SpecProblem as problem:
            self.problem(("timezone",), problem.message)
            return parse_zone(DEFAULT_ZONE)

    def _crosswalks(self, source_system: str) -> dict[str, Crosswalk]:
        folder = self.path.parent / "crosswalks" / source_system
        found: dict[str, Crosswalk] = {}
        if not folder.is_dir():
            return found
        for file in sorted(folder.glob("*.yaml")):
            try:
                crosswalk = load_crosswalk(file, self.tables)
            except CodeTableError as err:
                self.problems.extend(str(issue) for issue in err.issues)
                continue
            if crosswalk.crosswalk in found:
                self.problems.append(f"{file}: crosswalk: {crosswalk.crosswalk!r} is declared twice in {folder}")
            found[crosswalk.crosswalk] = crosswalk
        return found

    def _named_steps(self, data: dict[str, Any], ctx: StepContext) -> dict[str, Pipeline]:
        node = data.get("steps")
        named: dict[str, Pipeline] = {}
        if node is None:
            return named
        if not isinstance(node, dict):
            self.problem(("steps",), "steps is a mapping of names to lists of transforms")
            return named
        for name, items in node.items():
            current = StepContext(ctx.zone, ctx.crosswalks, ctx.tables, dict(named))
            try:
                named[str(name)] = self._pipeline(items, current, ("steps", name))
            except _Skip:
                continue
        return named

    # -- fields ------------------------------------------------------------------------------------

    def _fields(self, node: Any, ctx: StepContext) -> list[FieldPlan]:
        if not isinstance(node, dict) or not node:
            self.problem(("fields",), "fields is a mapping of canonical target fields to rules")
            return []
        known = target_fields()
        plans = []
        for target, rule in node.items():
            at: Loc = ("fields", target)
            target_field = self._target(str(target), known, at)
            if target_field is None:
                continue
            try:
                plans.append(self._plan(target_field, rule, ctx, at, prefix=""))
            except _Skip:
                continue
        return plans

    def _target(self, target: str, known: Mapping[str, TargetField], at: Loc) -> TargetField | None:
        if target in RESERVED_TARGETS:
            self.problem(at, f"{target} cannot be mapped: {RESERVED_TARGETS[target]}")
            return None
        found = known.get(target)
        if found is None:
            writable = [path for path, field in known.items() if field.model is None and path not in RESERVED_TARGETS]
            close = difflib.get_close_matches(target, writable, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            self.problem(at, f"unknown target field {target!r}: not a field of the canonical Ticket{hint}")
            return None
        if found.model is not None:
            self.problem(at, f"{target} is a group: map its fields ({target}.…) one by one")
            return None
        return found

    def _plan(self, target: TargetField, rule: Any, ctx: StepContext, at: Loc, prefix: str) -> FieldPlan:
        keys = tuple(target.path.split("."))
        full = prefix + target.path
        if target.item_model is not None:
            return self._each_plan(target, rule, ctx, at, keys, full)
        if isinstance(rule, dict) and ("each" in rule or "fields" in rule):
            self.problem(at, f"each/fields write a list of groups; {full} is a single value")
            raise _Skip
        produce, source = self._rule(rule, ctx, at, target)
        if source is not None and not prefix:  # an item's source is indexed when it is mapped (engine._items)
            self.sources[full] = source
        return FieldPlan(target=target.path, keys=keys, source=source, produce=produce, coerce=_coercer(target))

    def _each_plan(
        self, target: TargetField, rule: Any, ctx: StepContext, at: Loc, keys: tuple[str, ...], full: str
    ) -> FieldPlan:
        assert target.item_model is not None
        if not isinstance(rule, dict) or "each" not in rule or not isinstance(rule.get("fields"), dict):
            self.problem(at, f"{full} is a list of groups: write `each: <path to the partner's list>` and `fields:`")
            raise _Skip
        extra = [key for key in rule if key not in ("each", "fields")]
        if extra:
            self.problem((*at, extra[0]), "a list of groups takes only each and fields")
        each_path = rule["each"]
        try:
            getter = compile_path(each_path)
        except PathSyntaxError as err:
            self.problem((*at, "each"), str(err))
            raise _Skip from None
        known = item_fields(target.item_model)
        items = []
        for sub_target, sub_rule in rule["fields"].items():
            sub_at: Loc = (*at, "fields", sub_target)
            sub_field = self._target(str(sub_target), known, sub_at)
            if sub_field is None:
                continue
            try:
                items.append(self._plan(sub_field, sub_rule, ctx, sub_at, prefix=f"{full}[]."))
            except _Skip:
                continue
        self.sources[full] = each_path

        def each(payload: Any) -> list[Any]:
            value = getter(payload)
            if value is None:
                return []
            return value if isinstance(value, list) else [value]

        return FieldPlan(
            target=target.path, keys=keys, source=each_path, produce=_no_value, coerce=None,
            items=tuple(items), each=each,
        )

    def _rule(self, rule: Any, ctx: StepContext, at: Loc, target: TargetField | None) -> tuple[Produce, str | None]:
        """Compile one rule (or a list of alternatives) into a producer and its source description."""
        if isinstance(rule, list):
            if not rule:
                self.problem(at, "a list of alternatives needs at least one rule")
                raise _Skip
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
            raise _Skip
        if not isinstance(rule, dict):
            self.problem(at, "a rule is a source path, a mapping with path/const/concat/template, or a list of them")
            raise _Skip
        unknown = [key for key in rule if key not in _RULE_KEYS]
        if unknown:
            self.problem((*at, unknown[0]), f"unknown key in a rule; rules have {', '.join(sorted(_RULE_KEYS))}")
            raise _Skip
        sources = [key for key in _SOURCE_KEYS if key in rule]
        if len(sources) != 1:
            self.problem(at, "a rule has exactly one source: path, const, concat or template")
            raise _Skip
        kind = sources[0]
        if kind != "concat" and ("sep" in rule or "prefix" in rule):
            self.problem((*at, "sep" if "sep" in rule else "prefix"), "sep and prefix go with concat")
            raise _Skip
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
            raise _Skip
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
                raise _Skip from None
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
            raise _Skip
        separator = rule.get("sep", "")
        prefix = rule.get("prefix", "")
        if not isinstance(separator, str) or not isinstance(prefix, str):
            self.problem(at, "sep and prefix are text")
            raise _Skip
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
            raise _Skip
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
                raise _Skip from None
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
            raise _Skip
        built = []
        failed = False
        for i, item in enumerate(node):
            try:
                built.append(build_step(item, ctx))
            except SpecProblem as problem:
                self.problem((*at, i, *problem.at), problem.message)
                failed = True
        if failed:
            raise _Skip
        return chain_steps(built)

    def _when(self, node: Any, ctx: StepContext, at: Loc) -> Predicate:
        try:
            return safe(compile_condition(node, ctx))
        except SpecProblem as problem:
            self.problem((*at, *problem.at), problem.message)
            raise _Skip from None

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
                raise _Skip from None

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

    # -- return to sender --------------------------------------------------------------------------

    def _returns(self, node: Any, ctx: StepContext) -> list[ReturnRule]:
        if node is None:
            return []
        if not isinstance(node, list):
            self.problem(("return_when",), "return_when is a list of {when, reason_code, reason}")
            return []
        rules = []
        codes = ", ".join(code.value for code in NotAcceptedReason)
        for i, item in enumerate(node):
            at: Loc = ("return_when", i)
            if not isinstance(item, dict) or set(item) - {"when", "reason_code", "reason"}:
                self.problem(at, "each return rule has when, reason_code and reason")
                continue
            try:
                when = self._when(item.get("when"), ctx, (*at, "when"))
                reason, _ = self._template(item.get("reason"), (*at, "reason"), missing="")
            except _Skip:
                continue
            try:
                code = NotAcceptedReason(str(item.get("reason_code")))
            except ValueError:
                self.problem((*at, "reason_code"), f"reason_code is a national not-accepted reason: {codes}")
                continue
            rules.append(ReturnRule(when=when, reason_code=code, reason=_text_or_empty(reason)))
        return rules

    # -- reverse -----------------------------------------------------------------------------------

    def _reverse(self, node: Any, ctx: StepContext) -> ReversePlan | None:
        if not isinstance(node, dict) or set(node) - {"status", "fields"} or "status" not in node:
            self.problem(("reverse",), "reverse has status: {target, map} and fields:")
            return None
        status = node["status"]
        at: Loc = ("reverse", "status")
        if not isinstance(status, dict) or set(status) != {"target", "map"}:
            self.problem(at, "status has target (the partner's status field) and map (national status → code)")
            return None
        status_target = status["target"]
        if not isinstance(status_target, str) or not _PARTNER_KEY.match(status_target):
            self.problem((*at, "target"), "target is the partner's field, e.g. handleStatus or reply.state")
            return None
        codes: dict[Status, Any] = {}
        mapping = status["map"] if isinstance(status["map"], dict) else {}
        for name, code in mapping.items():
            try:
                codes[Status(str(name))] = code
            except ValueError:
                self.problem((*at, "map", name), f"{name!r} is not a national status ({', '.join(Status)})")
        missing = [s.value for s in Status if s not in codes]
        if missing:
            self.problem((*at, "map"), f"every national status needs a partner code; missing: {', '.join(missing)}")
        plans = []
        fields_node = node.get("fields") or {}
        if not isinstance(fields_node, dict):
            self.problem(("reverse", "fields"), "fields is a mapping of partner fields to rules")
            fields_node = {}
        for key, rule in fields_node.items():
            field_at: Loc = ("reverse", "fields", key)
            if not isinstance(key, str) or not _PARTNER_KEY.match(key):
                self.problem(field_at, "a partner field is a key or a dotted path of keys")
                continue
            try:
                produce, source = self._rule(rule, ctx, field_at, None)
            except _Skip:
                continue
            plans.append(FieldPlan(target=key, keys=tuple(key.split(".")), source=source, produce=produce,
                                   coerce=None))
        return ReversePlan(status_keys=tuple(status_target.split(".")), status_codes=codes, fields=tuple(plans))


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


def _text_or_empty(render: Callable[[Any], Any]) -> Callable[[Any], str]:
    def text(payload: Any) -> str:
        value = render(payload)
        return value if isinstance(value, str) else ""

    return text


def _no_value(payload: Any, notes: list[Note]) -> Any:
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float):
        return repr(value).removesuffix(".0")
    if isinstance(value, dict | list):
        raise StepError("invalid_text", "expected text, got an object or a list", None)
    return str(value)


def _coercer(target: TargetField) -> Callable[[Any], Any] | None:
    """Partners send numbers where the contract keeps text (hotlineId: 880231); a list field takes one value."""
    if target.is_list:
        def as_list(value: Any) -> Any:
            items = value if isinstance(value, list) else [value]
            if target.takes_text:
                items = [str(item) if isinstance(item, int) and not isinstance(item, bool) else item for item in items]
            return items

        return as_list
    if target.takes_text:
        def as_text(value: Any) -> Any:
            return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

        return as_text
    return None
