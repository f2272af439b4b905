"""Fixtures for the ops specifications: the demo's credentials and ops tokens in the environment, a running gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.ops.ops_support import ENVIRONMENT, OpsGateway, running_gateway


@pytest.fixture(autouse=True)
def ops_environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Partner credentials and the three ops users' tokens, set in the environment as a deployment sets them."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    return dict(ENVIRONMENT)


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def gw(tmp_path: Path, store_kind: str) -> AsyncIterator[OpsGateway]:
    """The gateway (no workers) on SQLite, Redis or PostgreSQL, with its lifespan running."""
    async with running_gateway(tmp_path, store_kind=store_kind) as gateway:
        yield gateway


@pytest.fixture
async def sqlite_gw(tmp_path: Path) -> AsyncIterator[OpsGateway]:
    """The gateway (no workers) on SQLite only, for behaviour that does not depend on the store."""
    async with running_gateway(tmp_path) as gateway:
        yield gateway
