"""YAML documents that remember where each key stands, so a configuration error can name its line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from contracts.errors import ContractError

ModelT = TypeVar("ModelT", bound=BaseModel)

KeyPath = tuple[str | int, ...]


def render_key(path: KeyPath) -> str:
    """`codes[3].label` for ("codes", 3, "label")."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


class YamlDocumentError(ContractError):
    """A YAML file that is not well-formed, or whose content breaks a rule; names file, line and key."""

    def __init__(self, file: str, message: str, *, key: str | None = None, line: int | None = None) -> None:
        where = file + (f":{line}" if line else "")
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")
        self.file = file
        self.key = key
        self.line = line
        self.reason = message


try:  # libyaml's parser: the same nodes and marks, about ten times faster than PyYAML's own (start-up reads ~40 files)
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # a PyYAML built without libyaml
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]


class _Loader(_SafeLoader):
    """A safe loader that leaves an impossible date (2024-02-30) as text, so validation can name its line."""


def _timestamp_or_text(loader: _SafeLoader, node: yaml.Node) -> object:
    assert isinstance(node, yaml.ScalarNode)
    try:
        return loader.construct_yaml_timestamp(node)
    except ValueError:
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


@dataclass(frozen=True)
class YamlDocument:
    """Parsed data plus the node tree, to find the line of any key path."""

    file: str
    data: Any
    node: yaml.Node | None = None

    def line_of(self, path: KeyPath) -> int | None:
        """The line of the deepest part of `path` present in the file (the key itself when present)."""
        node = self.node
        if node is None:
            return None
        line = node.start_mark.line + 1
        for part in path:
            if isinstance(node, yaml.MappingNode) and isinstance(part, str):
                for key_node, value_node in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.value == part:
                        line, node = key_node.start_mark.line + 1, value_node
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
                node = node.value[part]
                line = node.start_mark.line + 1
            else:
                return line
        return line

    def error(self, path: KeyPath, message: str) -> YamlDocumentError:
        return YamlDocumentError(self.file, message, key=render_key(path) or None, line=self.line_of(path))


def duplicate_keys(node: yaml.Node | None, path: KeyPath = ()) -> list[tuple[KeyPath, int, str]]:
    """Keys said twice in one mapping, as (path, line, message): PyYAML would keep the last silently."""
    found: list[tuple[KeyPath, int, str]] = []
    if isinstance(node, yaml.MappingNode):
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key, line = str(key_node.value), key_node.start_mark.line + 1
            if key in first_line:
                found.append(((*path, key), line, f"key appears twice (first on line {first_line[key]})"))
            first_line.setdefault(key, line)
            found.extend(duplicate_keys(value_node, (*path, key)))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found.extend(duplicate_keys(item, (*path, i)))
    return found


def parse_yaml_document(text: str, file: str) -> tuple[YamlDocument, list[tuple[KeyPath, int, str]]]:
    """Parse one YAML document safely; return it with its duplicate keys (the caller decides how to report)."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = None if node is None else loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise YamlDocumentError(file, f"not valid YAML: {err.problem or err}",
                                line=mark.line + 1 if mark is not None else None) from None
    except yaml.YAMLError as err:
        raise YamlDocumentError(file, f"not valid YAML: {err}") from None
    finally:
        loader.dispose()
    return YamlDocument(file, data, node), duplicate_keys(node)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document safely; a key said twice is an error naming its line."""
    document, duplicates = parse_yaml_document(text, file)
    if duplicates:
        path, line, message = duplicates[0]
        raise YamlDocumentError(file, message, key=render_key(path), line=line)
    return document


class YamlFileError(ContractError):
    """A YAML file that cannot be used as the model it configures; every problem names file, line and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def validate_document(document: YamlDocument, model: type[ModelT], *,
                      defaults: dict[str, Any] | None = None, hint: Callable[[KeyPath], str] | None = None) -> ModelT:
    """Validate a parsed document as `model`; YamlFileError lists each problem at its line."""
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise YamlFileError([str(document.error((), f"must be a mapping of keys to values (a {model.__name__})"))])
    try:
        return model.model_validate({**(defaults or {}), **data})
    except ValidationError as err:
        problems = []
        for detail in err.errors(include_url=False):
            path = tuple(p for p in detail["loc"] if isinstance(p, str | int))
            problems.append(str(document.error(path, detail["msg"])) + (hint(path) if hint else ""))
        raise YamlFileError(problems) from err


def load_yaml_model(path: Path, model: type[ModelT], *, defaults: dict[str, Any] | None = None,
                    hint: Callable[[KeyPath], str] | None = None) -> ModelT:
    """Read a YAML file and validate it as `model`; YamlFileError names file, line and key of each problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise YamlFileError([f"{path}: cannot read: {err.strerror or err}"]) from err
    except UnicodeDecodeError as err:
        raise YamlFileError([f"{path}: not UTF-8 text: {err.reason} at byte {err.start}"]) from err
    try:
        document = parse_yaml(text, str(path))
    except YamlDocumentError as err:
        raise YamlFileError([str(err)]) from err
    return validate_document(document, model, defaults=defaults, hint=hint)
