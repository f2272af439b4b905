"""The README's demo, as a newcomer runs it: `python main.py`, push a ticket, watch it come back closed."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
GATEWAY = "http://127.0.0.1:8315"
CITY = "http://127.0.0.1:8411"
NATIONAL = "http://127.0.0.1:8316"

pytestmark = pytest.mark.slow


def wait_until(check: object, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if callable(check) and check():
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{what} did not happen within {within} s")


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python main.py` exactly as the README says, with its data under a temporary folder."""
    env = {"PATH": "/usr/bin:/bin", "HIG_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([sys.executable, "main.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: httpx.get(f"{GATEWAY}/readyz", timeout=1).status_code == 200, 60, "the demo start")
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_a_pushed_ticket_reaches_the_national_simulator_and_comes_back_closed(
        demo: subprocess.Popen[bytes]) -> None:
    pushed = httpx.post(f"{CITY}/sim/push", json={"fixture": "01-food-complaint", "fresh": True}, timeout=10).json()
    assert pushed["status"] == 202
    number = pushed["payload"]["hotlineNo"]

    def callbacks() -> list[dict[str, object]]:
        found = httpx.get(f"{CITY}/sim/callbacks", timeout=5).json()["callbacks"]
        return [c for c in found if c["body"]["hotlineNo"] == number]

    # 受理 (handleStatus 1) ... 办结 (handleStatus 2): the city hears each status in its own codes
    wait_until(lambda: any(c["body"]["handleStatus"] == "2" for c in callbacks()), 60, "the 办结 callback")
    assert all(c["verified"] for c in callbacks())
    assert httpx.get(f"{NATIONAL}/sim/stats", timeout=5).json()["tickets"] >= 1
