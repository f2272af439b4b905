"""Reading code tables and crosswalks from YAML with line numbers; the shipped tables, loaded once."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from importlib.resources import files
from importlib.resources.abc import Traversable
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from contracts.codetables.crosswalk import Crosswalk, crosswalk_problems, crosswalk_target_problems
from contracts.codetables.issues import CodeTableError, CodeTableIssue, Loc
from contracts.codetables.models import DEFER_CROSS_CHECKS, CodeTable, CodeTables, table_problems, version_problems
from contracts.yamldoc import YamlDocument, YamlDocumentError, parse_yaml_document, render_key


def _issue(document: YamlDocument, loc: Loc, message: str) -> CodeTableIssue:
    return CodeTableIssue(document.file, render_key(loc), message, document.line_of(loc))


def _parse(text: str, file: str) -> YamlDocument:
    try:
        document, duplicates = parse_yaml_document(text, file)
    except YamlDocumentError as err:
        raise CodeTableError([CodeTableIssue(file, "", err.reason, err.line)]) from None
    if duplicates:
        raise CodeTableError([CodeTableIssue(file, render_key(path), message, line)
                              for path, line, message in duplicates])
    return document


def _read(source: Traversable, file: str) -> str:
    try:
        return source.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise CodeTableError(
            [CodeTableIssue(file, "", f"not UTF-8 text: {err.reason} at byte {err.start}")]
        ) from None
    except OSError as err:
        raise CodeTableError([CodeTableIssue(file, "", f"cannot be read: {err.strerror or err}")]) from None


def _pydantic_message(error: Mapping[str, Any], loc: Loc) -> str:
    kind, message = error["type"], str(error["msg"])
    if kind == "extra_forbidden" and loc:
        return f"unknown key {loc[-1]!r}"
    if kind == "missing" and loc:
        return f"required key {loc[-1]!r} is missing"
    return message.removeprefix("Value error, ")


def _entry_context(document: YamlDocument, loc: Loc) -> str:
    """' (code '0101')' for a problem inside one entry of a list, to say which entry without counting."""
    if (
        len(loc) >= 2
        and loc[0] in ("codes", "entries")
        and isinstance(loc[1], int)
        and isinstance(document.data, dict)
    ):
        items = document.data.get(loc[0])
        if isinstance(items, list) and 0 <= loc[1] < len(items) and isinstance(items[loc[1]], dict):
            name = "code" if loc[0] == "codes" else "partner_code"
            value = items[loc[1]].get(name)
            if isinstance(value, str):
                return f" ({name} {value!r})"
    return ""


_M = TypeVar("_M", bound=BaseModel)


def _validate(model: type[_M], document: YamlDocument, context: dict[str, Any]) -> _M:
    if not isinstance(document.data, dict):
        raise CodeTableError(
            [_issue(document, (), f"must be a mapping of keys to values (a {model.__name__})")]
        )
    try:
        return model.model_validate(document.data, context=context)
    except ValidationError as err:
        issues = []
        for error in err.errors(include_url=False):
            loc = tuple(error["loc"])
            issues.append(_issue(document, loc, _pydantic_message(error, loc) + _entry_context(document, loc)))
        raise CodeTableError(issues) from None


def _load_table_document(document: YamlDocument) -> CodeTable:
    table = _validate(CodeTable, document, {DEFER_CROSS_CHECKS: True})
    problems = table_problems(table)
    if problems:
        raise CodeTableError([_issue(document, loc, message) for loc, message in problems])
    return table


# ---------------------------------------------------------------------------------------------------
# Loaders


def _shipped_directory() -> Traversable:
    return files("contracts").joinpath("codes")


def load_code_table(source: Traversable | Path, *, file: str | None = None) -> CodeTable:
    """Load and check one table version from a YAML file."""
    name = file or str(source)
    return _load_table_document(_parse(_read(source, name), name))


def load_code_tables(directory: Traversable | Path | None = None) -> CodeTables:
    """Load every *.yaml table version in `directory` (default: the shipped contracts/codes) and check them.

    Every problem in every file is reported at once, each naming its file, line and key."""
    root: Traversable = _shipped_directory() if directory is None else directory
    sources = sorted(
        (item for item in root.iterdir() if item.is_file() and item.name.endswith((".yaml", ".yml"))),
        key=lambda item: item.name,
    )
    if not sources:
        raise CodeTableError([CodeTableIssue(str(root), "", "holds no code table files (*.yaml)")])
    issues: list[CodeTableIssue] = []
    loaded: list[tuple[YamlDocument, CodeTable]] = []
    for source in sources:
        try:
            document = _parse(_read(source, str(source)), str(source))
            loaded.append((document, _load_table_document(document)))
        except CodeTableError as err:
            issues.extend(err.issues)
    grouped: dict[str, list[tuple[YamlDocument, CodeTable]]] = {}
    for document, table in loaded:
        grouped.setdefault(table.table, []).append((document, table))
    for group in grouped.values():
        group.sort(key=lambda pair: pair[1].effective_from)
        for i, other, loc, message in version_problems([table for _, table in group]):
            issues.append(_issue(group[i][0], loc, f"{message} (see {group[other][0].file})"))
    if issues:
        raise CodeTableError(issues)
    return CodeTables(table for _, table in loaded)


@functools.cache
def default_code_tables() -> CodeTables:
    """The shipped tables, loaded and checked once per process (the gateway calls this at start-up)."""
    return load_code_tables()


def load_crosswalk(
    source: str | PathLike[str] | Traversable | Mapping[str, Any],
    tables: CodeTables | None = None,
    *,
    file: str | None = None,
) -> Crosswalk:
    """Load a crosswalk from a YAML file or an already-parsed mapping and check every target code exists
    in its table during the crosswalk's period (against `tables`, default: the shipped ones).

    `file` names the source in error messages (a mapping has no file or lines of its own)."""
    if isinstance(source, Mapping):
        document = YamlDocument(file or "<crosswalk>", dict(source))
    else:
        path: Traversable = Path(source) if isinstance(source, str | PathLike) else source
        name = file or str(path)
        document = _parse(_read(path, name), name)
    crosswalk = _validate(Crosswalk, document, {DEFER_CROSS_CHECKS: True})
    problems = crosswalk_problems(crosswalk)
    problems += crosswalk_target_problems(crosswalk, default_code_tables() if tables is None else tables)
    if problems:
        raise CodeTableError([_issue(document, loc, message) for loc, message in problems])
    return crosswalk
