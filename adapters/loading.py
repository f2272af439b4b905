"""Loading adapter files: each checked against its kind's options and its mapping spec, naming file, line and key."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ValidationError

from adapters.config import (
    CANONICAL_MAPPING,
    DEFAULT_ADAPTERS_DIR,
    DEFAULT_MAPPING_SPECS_DIR,
    AdapterConfig,
    AdapterConfigError,
    resolve_mapping_spec,
)
from adapters.registry import AdapterKindError, AdapterRegistry, default_registry
from contracts.yamldoc import YamlDocument, YamlDocumentError, parse_yaml
from mapping.loading import load_spec
from mapping.paths import PathSyntaxError, parse_path
from mapping.spec import MappingSpec, SpecError


def _pydantic_problems(doc: YamlDocument, err: ValidationError, prefix: tuple[str | int, ...] = ()) -> list[str]:
    problems = []
    for detail in err.errors(include_url=False):
        loc = tuple(x for x in detail["loc"] if not (isinstance(x, str) and x.startswith("function-")))
        problems.append(str(doc.error((*prefix, *loc), detail["msg"])))
    return problems


# Keys that hold paths into a partner's JSON, checked at load so a typo fails at start-up, not at 3 a.m.
PATH_OPTION_SUFFIX = "_path"


def _check_option_paths(doc: YamlDocument, options: BaseModel) -> list[str]:
    problems = []
    for name, value in options:
        if name.endswith(PATH_OPTION_SUFFIX) and isinstance(value, str):
            try:
                parse_path(value)
            except PathSyntaxError as err:
                problems.append(str(doc.error(("options", name), str(err))))
    return problems


def parse_adapter_config(text: str, file: Path, *, registry: AdapterRegistry | None = None,
                         specs_dir: Path = DEFAULT_MAPPING_SPECS_DIR) -> AdapterConfig:
    """Check one adapter file; AdapterConfigError naming file, line and key of every problem."""
    registry = registry or default_registry
    try:
        doc = parse_yaml(text, str(file))
    except YamlDocumentError as err:
        raise AdapterConfigError([str(err)]) from err
    data = doc.data
    if not isinstance(data, dict):
        raise AdapterConfigError([str(doc.error((), "an adapter file is a mapping with id, kind, partner_system, "
                                                     "region_code and mapping_spec"))])
    try:
        config = AdapterConfig.model_validate(data)
    except ValidationError as err:
        raise AdapterConfigError(_pydantic_problems(doc, err)) from err

    problems: list[str] = []
    if file.stem != config.id:
        problems.append(str(doc.error(("id",), f"the file of adapter {config.id!r} must be named {config.id}.yaml")))
    try:
        kind = registry.get(config.kind)
    except AdapterKindError as err:
        problems.append(str(doc.error(("kind",), str(err))))
    else:
        if kind.options_model is not None:
            try:
                options = kind.options_model.model_validate(config.options)
            except ValidationError as err:
                problems.extend(_pydantic_problems(doc, err, ("options",)))
            else:
                problems.extend(_check_option_paths(doc, options))
        elif config.options:
            problems.append(str(doc.error(("options",), f"adapter kind {config.kind!r} takes no options")))
        problems.extend(str(doc.error(key, message)) for key, message in kind.check_config(config))
    spec_path: Path | None = None
    if not config.is_canonical:
        spec_path = resolve_mapping_spec(config.mapping_spec, file.parent, specs_dir)
        if not spec_path.is_file():
            problems.append(str(doc.error(("mapping_spec",), f"no mapping spec at {spec_path} (a bare name is looked "
                                                             f"up in {specs_dir}; a path is relative to this file; "
                                                             f"`{CANONICAL_MAPPING}` takes the national standard)")))
    if problems:
        raise AdapterConfigError(problems)
    config._source_file = file
    config._mapping_spec_path = spec_path
    return config


def load_adapters(directory: Path | str = DEFAULT_ADAPTERS_DIR, *, registry: AdapterRegistry | None = None,
                  specs_dir: Path = DEFAULT_MAPPING_SPECS_DIR) -> dict[str, AdapterConfig]:
    """Every `*.yaml` adapter file of a folder (enabled or not), by id; AdapterConfigError lists all problems.

    Files whose name starts with `_` or `.` are skipped (drafts, examples).
    """
    folder = Path(directory).resolve()
    if not folder.is_dir():
        raise AdapterConfigError([f"{folder}: no such adapter configuration folder"])
    found: dict[str, AdapterConfig] = {}
    problems: list[str] = []
    for file in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if file.name.startswith(("_", ".")):
            continue
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            problems.append(f"{file}: cannot read the adapter file: {err}")
            continue
        try:
            config = parse_adapter_config(text, file, registry=registry, specs_dir=specs_dir)
        except AdapterConfigError as err:
            problems.extend(err.problems)
            continue
        if config.id in found:
            first = found[config.id].source_file
            problems.append(f"{file}: id: adapter id {config.id!r} is already defined in {first}")
            continue
        found[config.id] = config
    if problems:
        raise AdapterConfigError(problems)
    return found


def mapping_specs_for(configs: Mapping[str, AdapterConfig]) -> dict[str, MappingSpec]:
    """The compiled mapping spec of every enabled, non-canonical adapter, by adapter id (for IntakeService).

    A spec must name the adapter it serves and its partner system; SpecError lists every problem.
    """
    specs: dict[str, MappingSpec] = {}
    problems: list[str] = []
    for adapter_id, config in configs.items():
        path = config.mapping_spec_path
        if not config.enabled or path is None:
            continue
        try:
            spec = load_spec(path)
        except SpecError as err:
            problems.extend(err.problems)
            continue
        where = config.source_file or adapter_id
        if spec.adapter_id != adapter_id:
            problems.append(f"{where}: mapping_spec: {path} is the spec of adapter {spec.adapter_id!r}, "
                            f"not of {adapter_id!r}")
        elif spec.source_system != config.partner_system:
            problems.append(f"{where}: partner_system: {config.partner_system!r} differs from the source_system "
                            f"{spec.source_system!r} of its mapping spec {path}")
        else:
            specs[adapter_id] = spec
    if problems:
        raise SpecError(problems)
    return specs


