"""Source paths into a partner payload (`a.b[0].c`, `files[*].url`), parsed once into getter closures."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from mapping.errors import MappingError

Getter = Callable[[Any], Any]

# A key is any run of characters other than the separators; an index is a number or `*`.
_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+|\*)\]|(\.)")


class PathSyntaxError(MappingError):
    """A path that cannot be read: says what is wrong and where."""


def parse_path(path: str) -> tuple[str | int | None, ...]:
    """Split `a.b[0].c[*]` into ('a', 'b', 0, 'c', None); None stands for `[*]` (every item)."""
    if not isinstance(path, str) or not path.strip():
        raise PathSyntaxError("a path is a non-empty text such as tsfxx.xm or attachments[*].url")
    if path != path.strip():
        raise PathSyntaxError(f"path {path!r} has leading or trailing spaces")
    steps: list[str | int | None] = []
    position = 0
    expect_key = True  # at the start and after a dot a key must follow
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise PathSyntaxError(f"path {path!r}: unexpected {path[position]!r} at position {position + 1}")
        key, index, dot = match.groups()
        if key is not None:
            if not expect_key:
                raise PathSyntaxError(f"path {path!r}: a key must follow a dot at position {position + 1}")
            steps.append(key)
            expect_key = False
        elif index is not None:
            if expect_key:
                raise PathSyntaxError(f"path {path!r}: [{index}] must follow a key at position {position + 1}")
            steps.append(None if index == "*" else int(index))
        else:
            assert dot is not None
            if expect_key:
                raise PathSyntaxError(f"path {path!r}: empty key at position {position + 1}")
            expect_key = True
        position = match.end()
    if expect_key:
        raise PathSyntaxError(f"path {path!r} ends with a dot")
    return tuple(steps)


def _as_items(value: Any) -> list[Any]:
    # XML turned into a dict gives a list only when an element repeats: one element is one item.
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _item(value: Any, index: int) -> Any:
    if isinstance(value, list):
        return value[index] if index < len(value) else None
    return value if index == 0 else None


def compile_path(path: str) -> Getter:
    """A function reading `path` from a payload: None where a step is missing or of the wrong kind.

    With `[*]` the result is a list (one level per `[*]`, flattened), never None."""
    steps = parse_path(path)
    if None not in steps:
        return _plain_getter(steps)
    return _fanout_getter(steps)


def _plain_getter(steps: tuple[str | int | None, ...]) -> Getter:
    if len(steps) == 1 and isinstance(steps[0], str):
        only = steps[0]

        def get_one(payload: Any) -> Any:
            return payload.get(only) if isinstance(payload, dict) else None

        return get_one

    def get(payload: Any) -> Any:
        value = payload
        for step in steps:
            if isinstance(step, str):
                if not isinstance(value, dict):
                    return None
                value = value.get(step)
            else:
                assert isinstance(step, int)
                value = _item(value, step)
            if value is None:
                return None
        return value

    return get


def _fanout_getter(steps: tuple[str | int | None, ...]) -> Getter:
    def walk(value: Any, start: int) -> list[Any]:
        for position in range(start, len(steps)):
            step = steps[position]
            if step is None:
                found: list[Any] = []
                for item in _as_items(value):
                    found.extend(walk(item, position + 1))
                return found
            if isinstance(step, str):
                value = value.get(step) if isinstance(value, dict) else None
            else:
                value = _item(value, step)
            if value is None:
                return []
        return [value]

    def get(payload: Any) -> list[Any]:
        return walk(payload, 0)

    return get


def assign(doc: dict[str, Any], keys: tuple[str, ...], value: Any) -> None:
    """Set `value` at a dotted target (as keys) inside nested dicts, creating the groups on the way."""
    target = doc
    for key in keys[:-1]:
        target = target.setdefault(key, {})
    target[keys[-1]] = value
