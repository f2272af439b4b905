"""Fixtures for the adapter specifications: demo credentials in the environment, a gateway, simulators."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from simulators.peer import DEV_CREDENTIALS
from tests.adapters.adapter_support import GatewayUnderTest, serve_gateway


@pytest.fixture
def dev_credentials(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The demo credentials, set in the environment as a deployment would set its own."""
    for name, value in DEV_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    return dict(DEV_CREDENTIALS)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUnderTest]:
    """The demo adapters behind the real inbound route, intake and SQLite store, on loopback.

    One per test module (specs take a while to compile): tests push tickets under fresh numbers."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in DEV_CREDENTIALS.items():
            patch.setenv(name, value)
        with serve_gateway(tmp_path_factory.mktemp("gateway")) as gw:
            yield gw
