"""The delivery transport reaches past httpx's public API (adapters/wire/transport.py: the pool's network backend,
worth it by docs/benchmarks.md). That reach-in holds for the versions it was written against, pinned in
requirements.txt; an upgrade of either makes this fail, so that someone looks at the reach-in before it breaks."""

from __future__ import annotations

import re
from pathlib import Path

import httpcore
import httpx

from adapters.wire.transport import _Backend, delivery_transport

REQUIREMENTS = Path(__file__).resolve().parents[2] / "requirements.txt"


def _pinned(name: str) -> str:
    match = re.search(rf"^{name}==([^\s#]+)", REQUIREMENTS.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, f"{name} is not pinned in requirements.txt"
    return match.group(1)


def test_httpx_and_httpcore_are_the_versions_the_reach_in_was_written_for() -> None:
    assert (httpx.__version__, httpcore.__version__) == (_pinned("httpx"), _pinned("httpcore")) == ("0.28.1", "1.0.9")


async def test_the_transport_still_puts_its_backend_under_httpx_pool() -> None:
    transport = delivery_transport(limits=httpx.Limits(), verify=True, trust_env=False)
    try:
        pool = transport._pool
        assert isinstance(pool, httpcore.AsyncConnectionPool)
        assert isinstance(pool._network_backend, _Backend)
    finally:
        await transport.aclose()
