"""YAML documents that remember where each key stands, so a configuration error can name its line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml


class YamlDocumentError(ValueError):
    """A YAML file that is not well-formed, or whose content breaks a rule; names file, line and key."""

    def __init__(self, file: str, message: str, *, key: str | None = None, line: int | None = None) -> None:
        where = file + (f":{line}" if line else "")
        super().__init__(f"{where}: {key + ': ' if key else ''}{message}")
        self.file = file
        self.key = key
        self.line = line
        self.reason = message


@dataclass(frozen=True)
class YamlDocument:
    """Parsed data plus the 1-based line of each key path (tuple of keys and list indexes)."""

    file: str
    data: Any
    lines: dict[tuple[str | int, ...], int] = field(default_factory=dict)

    def line_of(self, path: tuple[str | int, ...]) -> int | None:
        """The line of the deepest known prefix of `path`."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None

    def error(self, path: tuple[str | int, ...], message: str) -> YamlDocumentError:
        key = ".".join(str(p) for p in path) if path else None
        return YamlDocumentError(self.file, message, key=key, line=self.line_of(path))


def _index(node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _index(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index(item, (*path, i), lines)


def parse_yaml(text: str, file: str) -> YamlDocument:
    """Parse one YAML document safely (no tags that build objects) and index its key lines."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise YamlDocumentError(file, f"not valid YAML: {getattr(err, 'problem', err)}",
                                line=mark.line + 1 if mark else None) from err
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _index(node, (), lines)
    return YamlDocument(file=file, data=data, lines=lines)
