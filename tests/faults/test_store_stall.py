"""A store that stops answering: /readyz says so (503 with the reason) within the configured store timeout, a push
answers 503 saying the outcome is unknown and a retry is safe, and the retry after the store is back is stored once.

The gateway runs on its own redis-server (never the shared one on 6379), frozen with SIGSTOP as a hung Redis
behaves (the socket stays open, nothing answers), and thawed with SIGCONT.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from simulators.peer import encode_json, with_fresh_number
from tests.faults.fault_support import CITY_SEED, REDIS_SERVER, OwnRedis
from tests.hardening.live_gateway import CITY, GatewayFiles, running, serve, write_config

pytestmark = pytest.mark.slow

OPERATION_SECONDS = 1.0  # store.timeouts.operation_seconds of the gateway under test


def _push(http: httpx.Client, files: GatewayFiles, body: bytes) -> httpx.Response:
    return http.post(files.inbound(CITY), content=body, headers={
        "Content-Type": "application/json", "X-Api-Key": files.credentials["PARTNER_CITY12345_API_KEY"]})


def _wait_for(predicate_status: int, http: httpx.Client, files: GatewayFiles, within: float) -> httpx.Response:
    deadline = time.monotonic() + within
    while True:
        answer = http.get(f"{files.url}/readyz")
        if answer.status_code == predicate_status or time.monotonic() > deadline:
            return answer
        time.sleep(0.1)


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_a_frozen_store_makes_readyz_503_and_pushes_say_a_retry_is_safe(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    own = OwnRedis(tmp_path / "redis")
    own.start()
    try:
        files = write_config(tmp_path / "gateway", workers=False, pollers=False,
                             store={"timeouts": {"connect_seconds": 1.0, "operation_seconds": OPERATION_SECONDS}})
        files.env.update({"HIG_STORE__KIND": "redis", "HIG_STORE__REDIS_URL": own.url})
        with running(serve(files)) as gateway, httpx.Client(timeout=60, trust_env=False) as http:
            ready = http.get(f"{files.url}/readyz")
            assert ready.status_code == 200, ready.text
            assert ready.json()["store_health"]["writable"] is True
            body = encode_json(with_fresh_number(CITY_SEED, ("hotlineNo",)))

            own.freeze()
            try:
                answer = _push(http, files, body)
                assert answer.status_code == 503, answer.text
                refusal = answer.json()
                assert refusal["stored"] == "unknown" and refusal["retry_safe"] is True, refusal
                assert "send the same ticket again" in refusal["message_en"] and "重发同一工单" in refusal["message"]
                assert answer.headers["Retry-After"].isdigit()
                not_ready = _wait_for(503, http, files, within=30)
                assert not_ready.status_code == 503, not_ready.text
                assert not_ready.json()["status"] == "store_unavailable"
                assert not_ready.json()["reason"], not_ready.text
            finally:
                own.thaw()

            assert _wait_for(200, http, files, within=30).status_code == 200
            again = _push(http, files, body)  # the partner's retry: the same ticket
            assert again.status_code in (200, 202), again.text
            repeat = _push(http, files, body)
            assert (repeat.status_code, repeat.json()["ticket_id"]) == (200, again.json()["ticket_id"])
            assert repeat.json()["repeat"] is True
            assert gateway.alive()
    finally:
        own.stop()


def test_a_sqlite_file_locked_by_another_process_makes_readyz_503_until_released(tmp_path: Path) -> None:
    import sqlite3

    files = write_config(tmp_path, workers=False, pollers=False,
                         store={"timeouts": {"connect_seconds": 1.0, "operation_seconds": OPERATION_SECONDS}})
    with running(serve(files)), httpx.Client(timeout=60, trust_env=False) as http:
        assert http.get(f"{files.url}/readyz").status_code == 200
        holder = sqlite3.connect(files.data_dir / "gateway.db", isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock, as a stuck tool would
        try:
            not_ready = _wait_for(503, http, files, within=30)
            assert not_ready.status_code == 503, not_ready.text
            assert "SQLite refuses writes" in not_ready.json()["reason"], not_ready.text
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert _wait_for(200, http, files, within=30).status_code == 200
