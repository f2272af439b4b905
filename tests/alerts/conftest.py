"""Fixtures for the alert specifications: partner credentials and ops tokens in the environment."""

from __future__ import annotations

import pytest

from tests.ops.ops_support import ENVIRONMENT


@pytest.fixture(autouse=True)
def ops_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
