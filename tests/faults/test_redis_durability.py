"""What a Redis that persists, but not at once, can lose is said aloud; the WAITAOF option refuses a Redis without it.

Each test runs its own redis-server (never the shared one on 6379).
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.faults.fault_support import REDIS_SERVER, OwnRedis
from tests.hardening.live_gateway import running, serve, write_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")]


def test_appendfsync_everysec_is_reported_with_what_it_can_lose(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    own = OwnRedis(tmp_path / "redis", appendfsync="everysec")
    own.start()
    try:
        files = write_config(tmp_path / "gateway", workers=False, pollers=False)
        files.env.update({"HIG_STORE__KIND": "redis", "HIG_STORE__REDIS_URL": own.url})
        with running(serve(files)) as gateway:
            ready = httpx.get(f"{files.url}/readyz", timeout=30, trust_env=False)
            assert ready.status_code == 200  # it persists: a warning, not a refusal
            warnings = " ".join(ready.json()["store_health"]["warnings"])
            assert "appendfsync everysec" in warnings and "second of acknowledged intakes" in warnings, warnings
            assert "redis_wait_aof" in warnings
            assert "appendfsync everysec" in gateway.log_text()
    finally:
        own.stop()


def test_appendfsync_always_gets_no_such_warning(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    own = OwnRedis(tmp_path / "redis")
    own.start()
    try:
        files = write_config(tmp_path / "gateway", workers=False, pollers=False)
        files.env.update({"HIG_STORE__KIND": "redis", "HIG_STORE__REDIS_URL": own.url})
        with running(serve(files)):
            ready = httpx.get(f"{files.url}/readyz", timeout=30, trust_env=False)
            assert ready.json()["store_health"]["warnings"] == [], ready.text
    finally:
        own.stop()


def test_redis_wait_aof_on_a_redis_without_waitaof_refuses_to_start(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    own = OwnRedis(tmp_path / "redis", appendfsync="everysec")
    own.start()
    try:
        version = str(own.client().info("server")["redis_version"])
        if tuple(int(p) for p in version.split(".")[:2]) >= (7, 2):
            pytest.skip(f"Redis {version} has WAITAOF")
        files = write_config(tmp_path / "gateway", workers=False, pollers=False, store={"redis_wait_aof": True})
        files.env.update({"HIG_STORE__KIND": "redis", "HIG_STORE__REDIS_URL": own.url})
        gateway = serve(files)
        gateway.start()
        assert gateway.process is not None
        assert gateway.process.wait(timeout=60) != 0
        assert "store.redis_wait_aof is set" in gateway.log_text(), gateway.tail()
    finally:
        own.stop()
