"""One gateway and one set of delivery workers per SQLite store file, and a port in use told in one line: what a
second `python main.py` (or `worker`) meets."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.gateway.test_cli import ROOT, free_port


def _env(port: int, data: Path, workers: bool = True) -> dict[str, str]:
    return {"HIG_SERVER__PORT": str(port), "HIG_DATA_DIR": str(data), "PATH": "/usr/bin:/bin",
            "HIG_DEMO__SIMULATORS": "false", "HIG_DEMO__GENERATE_CREDENTIALS": "true", "HIG_POLLERS": "false",
            "HIG_WORKERS": "true" if workers else "false"}


@contextmanager
def _gateway(port: int, data: Path, workers: bool = True) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=_env(port, data, workers),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, "the first gateway did not start"
            assert time.monotonic() < deadline, "the first gateway was not ready in 60 s"
            time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _second(*args: str, port: int, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=_env(port, data), capture_output=True,
                          text=True, timeout=120)


def test_a_second_gateway_or_worker_on_the_same_store_file_is_refused_naming_the_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _gateway(free_port(), data) as first:  # it runs its delivery workers itself
        second = _second(port=free_port(), data=data)
        assert second.returncode == 1
        assert "Traceback" not in second.stderr
        [line] = second.stderr.strip().splitlines()
        assert line.startswith(f"refused: the store file {data / 'gateway.db'} already has a gateway: the gateway on")
        assert f"pid {first.pid}" in line and "single-node" in line
        worker = _second("worker", port=free_port(), data=data)
        assert worker.returncode == 1
        assert "already has its delivery workers" in worker.stderr and f"pid {first.pid}" in worker.stderr
    with _gateway(free_port(), data):  # the locks went with the first process
        pass


def test_one_worker_beside_a_gateway_without_workers_and_no_second(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with _gateway(free_port(), data, workers=False):
        env = _env(free_port(), data)
        worker = subprocess.Popen([sys.executable, "main.py", "worker", "--worker-id", "w1"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            owner = data / "gateway.db.workers.owner"
            deadline = time.monotonic() + 60
            while f'"pid": {worker.pid}' not in (owner.read_text() if owner.exists() else ""):
                assert worker.poll() is None, worker.stderr.read().decode() if worker.stderr else ""
                assert time.monotonic() < deadline, "the worker did not take the store's workers in 60 s"
                time.sleep(0.2)
            second = _second("worker", "--worker-id", "w2", port=free_port(), data=data)
            assert second.returncode == 1
            assert "already has its delivery workers: the delivery worker w1" in second.stderr
            assert f"pid {worker.pid}" in second.stderr
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def test_a_port_in_use_is_one_clear_line_not_a_traceback(tmp_path: Path) -> None:
    port = free_port()
    with _gateway(port, tmp_path / "one"):
        second = _second(port=port, data=tmp_path / "two")
    assert second.returncode == 1
    assert second.stderr.strip().splitlines() == [
        f"cannot listen on 127.0.0.1:{port}: Address already in use (another gateway? set server.port or "
        "HIG_SERVER__PORT)"]


def test_a_store_that_cannot_be_reached_at_start_is_one_log_line_naming_it_not_a_traceback(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    env = {**_env(free_port(), tmp_path / "data", workers=False), "HIG_STORE__KIND": "redis",
           "HIG_STORE__REDIS_URL": f"redis://127.0.0.1:{closed}/0"}
    run = subprocess.run([sys.executable, "main.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    assert "Traceback" not in run.stderr, run.stderr[-3000:]
    [said] = [line for line in run.stderr.splitlines() if "the gateway cannot start" in line]
    assert f"Redis at redis://127.0.0.1:{closed}/0 cannot be reached" in said and "StoreUnavailable" in said
