"""Finding and reading mapping spec files: one file, a directory of them, or the shipped spec of an adapter."""

from __future__ import annotations

import functools
from pathlib import Path

from contracts.codetables import CodeTables, default_code_tables
from contracts.yamldoc import YamlDocumentError, parse_yaml_document, render_key
from mapping.compiler import compile_spec
from mapping.spec import MappingSpec, SpecError

SPECS_DIR = Path(__file__).resolve().parent / "specs"
FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"


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
    return compile_spec(doc, path, tables or default_code_tables())


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
