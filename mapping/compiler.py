"""Compiling a parsed spec document into a MappingSpec: every key checked, every rule built once into closures."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from datetime import tzinfo
from pathlib import Path
from typing import Any

from contracts.codesets import NotAcceptedReason, Status
from contracts.codetables import CodeTableError, CodeTables, Crosswalk, load_crosswalk
from contracts.yamldoc import YamlDocument
from mapping.paths import PathSyntaxError, compile_path
from mapping.rules import Loc, RuleCompiler, Skip
from mapping.spec import (
    FOLLOW_UP_FIELDS,
    FOLLOW_UP_KINDS,
    FieldPlan,
    FollowUpRule,
    MappingSpec,
    ReturnRule,
    ReversePlan,
    SpecError,
)
from mapping.steps import Note, Pipeline, SpecProblem, StepContext, parse_zone
from mapping.targets import RESERVED_TARGETS, TargetField, item_fields, target_fields

SPEC_VERSION = 1
DEFAULT_ZONE = "+08:00"

_TOP_KEYS = {
    "spec_version", "adapter_id", "source_system", "title", "description", "timezone", "xml_record",
    "steps", "return_when", "fields", "reverse", "follow_ups",
}
_SYSTEM_ID = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_PARTNER_KEY = re.compile(r"^[^.\[\]\s]+(\.[^.\[\]\s]+)*$")


def compile_spec(doc: YamlDocument, path: Path, tables: CodeTables) -> MappingSpec:
    """Check and compile one parsed spec read from `path`; SpecError lists every problem found."""
    return _Compiler(doc, path, tables).compile()


class _Compiler(RuleCompiler):
    """Compiles a whole spec: its header, fields, return rules and reverse map."""

    def __init__(self, doc: YamlDocument, path: Path, tables: CodeTables) -> None:
        super().__init__(doc)
        self.path = path
        self.tables = tables
        self.sources: dict[str, str] = {}

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
        follow_ups = self._follow_ups(data.get("follow_ups"), ctx)
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
            follow_ups=tuple(follow_ups),
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
            except Skip:
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
            except Skip:
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
            raise Skip
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
            raise Skip
        extra = [key for key in rule if key not in ("each", "fields")]
        if extra:
            self.problem((*at, extra[0]), "a list of groups takes only each and fields")
        each_path = rule["each"]
        try:
            getter = compile_path(each_path)
        except PathSyntaxError as err:
            self.problem((*at, "each"), str(err))
            raise Skip from None
        known = item_fields(target.item_model)
        items = []
        for sub_target, sub_rule in rule["fields"].items():
            sub_at: Loc = (*at, "fields", sub_target)
            sub_field = self._target(str(sub_target), known, sub_at)
            if sub_field is None:
                continue
            try:
                items.append(self._plan(sub_field, sub_rule, ctx, sub_at, prefix=f"{full}[]."))
            except Skip:
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
            except Skip:
                continue
            try:
                code = NotAcceptedReason(str(item.get("reason_code")))
            except ValueError:
                self.problem((*at, "reason_code"), f"reason_code is a national not-accepted reason: {codes}")
                continue
            rules.append(ReturnRule(when=when, reason_code=code, reason=_text_or_empty(reason)))
        return rules

    # -- follow-ups of a known ticket ---------------------------------------------------------------

    def _follow_ups(self, node: Any, ctx: StepContext) -> list[FollowUpRule]:
        if node is None:
            return []
        if not isinstance(node, list):
            self.problem(("follow_ups",), "follow_ups is a list of {kind, when, fields}")
            return []
        rules = []
        for i, item in enumerate(node):
            at: Loc = ("follow_ups", i)
            if not isinstance(item, dict) or set(item) - {"kind", "when", "fields"} or "when" not in item:
                self.problem(at, "each follow-up rule has kind, when and fields")
                continue
            kind = item.get("kind")
            if kind not in FOLLOW_UP_KINDS:
                self.problem((*at, "kind"), f"kind is one of {', '.join(FOLLOW_UP_KINDS)}")
                continue
            fields = item.get("fields")
            if not isinstance(fields, dict) or "source_ticket_no" not in fields or "at" not in fields:
                self.problem((*at, "fields"), "fields maps at least source_ticket_no and at (the follow-up's time)")
                continue
            try:
                when = self._when(item["when"], ctx, (*at, "when"))
            except Skip:
                continue
            plans = []
            for name, rule in fields.items():
                field_at: Loc = (*at, "fields", name)
                if name not in FOLLOW_UP_FIELDS:
                    self.problem(field_at, f"a follow-up has the fields {', '.join(FOLLOW_UP_FIELDS)}")
                    continue
                try:
                    produce, source = self._rule(rule, ctx, field_at, None)
                except Skip:
                    continue
                plans.append(FieldPlan(target=name, keys=(name,), source=source, produce=produce,
                                       coerce=_text_of_number))
            rules.append(FollowUpRule(kind=kind, when=when, plans=tuple(plans)))
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
            except Skip:
                continue
            plans.append(FieldPlan(target=key, keys=tuple(key.split(".")), source=source, produce=produce,
                                   coerce=None))
        return ReversePlan(status_keys=tuple(status_target.split(".")), status_codes=codes, fields=tuple(plans))


def _text_or_empty(render: Callable[[Any], Any]) -> Callable[[Any], str]:
    def text(payload: Any) -> str:
        value = render(payload)
        return value if isinstance(value, str) else ""

    return text


def _text_of_number(value: Any) -> Any:
    """A follow-up's fields are text or a time: a number (hotlineNo: 880231, version: 2) is read as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _no_value(payload: Any, notes: list[Note]) -> Any:
    return None


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
