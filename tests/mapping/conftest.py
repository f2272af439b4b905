"""Fixtures for mapping tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mapping.loading import load_spec
from mapping.spec import MappingSpec
from tests.mapping.mapping_support import HEADER, MINIMAL_FIELDS, SpecFactory, write_spec


@pytest.fixture
def make_spec(tmp_path: Path) -> SpecFactory:
    """make_spec(fields_yaml, extra_yaml="", crosswalks={file: yaml}) → a compiled spec with the minimal fields."""

    def make(fields: str = "", extra: str = "", crosswalks: dict[str, str] | None = None) -> MappingSpec:
        body = HEADER + textwrap.dedent(extra) + "fields:\n" + MINIMAL_FIELDS + textwrap.indent(
            textwrap.dedent(fields), "  "
        )
        return load_spec(write_spec(tmp_path / "specs", body, crosswalks))

    return make
