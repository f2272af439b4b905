"""The provincial 12345 simulator started alone from the command line, as an integrator would run it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from adapters.wire.wsse import username_token
from simulators.province12345 import NS
from simulators.province12345.__main__ import DEV_PASSWORD, DEV_USERNAME, PASSWORD_ENV

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def cli_simulator() -> Iterator[str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != PASSWORD_ENV} | {"PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "simulators.province12345", "--port", str(port), "--gbk",
                                "--log-level", "WARNING"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    try:
        while True:
            try:
                httpx.get(base + "/sim/orders", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(process.stderr.read().decode() if process.stderr else "no output") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(10)


def test_the_cli_simulator_serves_its_wsdl_with_its_own_address(cli_simulator: str) -> None:
    response = httpx.get(cli_simulator + "/ws/order?wsdl")
    assert response.status_code == 200
    address = etree.fromstring(response.content).find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address")
    assert address is not None and address.get("location") == cli_simulator + "/ws/order"


def test_the_cli_simulator_holds_the_fixture_orders_and_takes_more(cli_simulator: str) -> None:
    assert len(httpx.get(cli_simulator + "/sim/orders").json()) == 8
    added = httpx.post(cli_simulator + "/sim/orders", json={"infoid": "GZ12345-20240401-000001", "aim": "投诉"})
    assert added.status_code == 201
    refused = httpx.post(cli_simulator + "/sim/orders", json={"infoid": "x", "colour": "red"})
    assert refused.status_code == 422
    assert httpx.get(cli_simulator + "/sim/replies").json() == []


def getpending(token: str) -> str:
    return (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header>{token}'
            f'</soap:Header><soap:Body><GetPendingOrders xmlns="{NS}"><max>1</max></GetPendingOrders></soap:Body>'
            "</soap:Envelope>")


def test_the_cli_simulator_answers_in_gbk_when_asked(cli_simulator: str) -> None:
    token = etree.tostring(username_token(DEV_USERNAME, DEV_PASSWORD), encoding="unicode")
    response = httpx.post(cli_simulator + "/ws/order", content=getpending(token).encode(),
                          headers={"Content-Type": "text/xml"})
    assert response.status_code == 200
    assert "charset=GBK" in response.headers["content-type"]
    assert response.content.startswith(b"<?xml version='1.0' encoding='GBK'?>")
    assert etree.fromstring(response.content).findtext(f".//{{{NS}}}way") == "来电"


def test_the_cli_simulator_wants_the_development_token_by_default(cli_simulator: str) -> None:
    response = httpx.post(cli_simulator + "/ws/order", content=getpending("").encode(),
                          headers={"Content-Type": "text/xml"})
    assert response.status_code == 500
    assert b"wsse:Security" in response.content
