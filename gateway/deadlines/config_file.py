"""Loads a deadline YAML file into a pydantic model, naming file, line and key on error."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from contracts.yamldoc import YamlDocumentError, parse_yaml

ModelT = TypeVar("ModelT", bound=BaseModel)


class ConfigFileError(ValueError):
    """A deadline configuration file is unreadable or invalid; each problem names file, line and key."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.path = path
        self.problems = problems


def load_yaml_model(path: Path, model: type[ModelT]) -> ModelT:
    """Parse ``path`` as YAML and validate it as ``model``; raise ConfigFileError on any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigFileError(path, [f"{path}: cannot read file: {err.strerror or err}"]) from err
    try:
        doc = parse_yaml(text, str(path))
    except YamlDocumentError as err:
        raise ConfigFileError(path, [str(err)]) from err
    try:
        return model.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as err:
        problems = [
            str(doc.error(tuple(p for p in detail["loc"] if isinstance(p, str | int)), detail["msg"]))
            for detail in err.errors(include_url=False)
        ]
        raise ConfigFileError(path, problems) from err
