"""Fixtures for the SOAP specifications: a real store and intake, the gateway's SOAP routes on loopback,
the provincial 12345 simulator in a thread, and zeep clients built the way the tech notes prescribe."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import zeep
from fastapi import FastAPI
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from adapters.config import AdapterConfig
from adapters.soap import SoapAdapter, zeep_settings
from gateway.http.fast_path import PushFastPath
from gateway.http.soap import SOAP_PUSH, SoapContext, soap_router
from gateway.http.wsdl import BINDING
from gateway.store.sqlite import SqliteStore
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar
from gateway.tickets.intake import IntakeService
from gateway.tickets.routing import Router
from mapping.loading import load_spec
from simulators.province12345 import Province12345, RunningProvince, run_in_thread

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "mapping" / "fixtures" / "province-12345-soap"
ADAPTER_ID = "province-12345-soap"
PARTNER_USER = "qdn-12345"
PARTNER_PASSWORD = "黔东南-12345-口令"  # non-ASCII on purpose: the digest is over UTF-8 bytes
PARTNER_PASSWORD_ENV = "TEST_SOAP_INBOUND_PASSWORD"
PROVINCE_USER = "hig-gateway"
PROVINCE_PASSWORD = "province-side-secret"
PROVINCE_PASSWORD_ENV = "TEST_SOAP_PROVINCE_PASSWORD"
MAX_BODY = 64 * 1024


def fixture_order(name: str) -> dict[str, Any]:
    """A work order of the mapping fixtures, by the start of its file name (e.g. "01")."""
    (file,) = [f for f in FIXTURES.glob(f"{name}-*.json") if f.name.count(".") == 1]
    data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
    return data


def adapter_config(**changes: Any) -> AdapterConfig:
    """The provincial adapter: SOAP pushes in (inbound_wsse), and polling and write-back when given a WSDL."""
    data: dict[str, Any] = {
        "id": ADAPTER_ID, "kind": "soap", "partner_system": "province-12345", "region_code": "522600",
        "mapping_spec": ADAPTER_ID,
        "options": {"inbound_wsse": {"username": PARTNER_USER, "password_env": PARTNER_PASSWORD_ENV}},
    }
    options = changes.pop("options", {})
    data["options"].update(options)
    data.update(changes)
    return AdapterConfig.model_validate(data)


def polling_config(wsdl_url: str, *, timeout: float = 5.0, interval: float = 0.05, batch_size: int = 3,
                   backoff_initial: float = 0.1, callback: bool = True) -> AdapterConfig:
    changes: dict[str, Any] = {
        "poll": {"operation": "GetPendingOrders", "interval_seconds": interval, "batch_size": batch_size,
                 "timeout": {"connect": min(timeout, 2.0), "total": timeout},
                 "backoff": {"initial": backoff_initial, "factor": 2.0, "max": 2.0, "jitter_percent": 0}},
        "options": {"wsdl": wsdl_url, "wsse": {"username": PROVINCE_USER, "password_env": PROVINCE_PASSWORD_ENV}},
    }
    if callback:
        changes["callback"] = {"operation": "ReplyOrder", "timeout": {"connect": 2.0, "total": 5.0},
                               "retry": {"initial_delay": 0.05, "max_delay": 0.2, "max_attempts": 3}}
    return adapter_config(**changes)


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PARTNER_PASSWORD_ENV, PARTNER_PASSWORD)
    monkeypatch.setenv(PROVINCE_PASSWORD_ENV, PROVINCE_PASSWORD)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "gateway.db", b"test-phone-hash-key")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(scope="session")
def spec_and_router() -> tuple[Any, Router, RuleBook, WorkingDayCalendar]:
    return (load_spec(REPO / "mapping" / "specs" / f"{ADAPTER_ID}.yaml"),
            Router.from_files(REPO / "config" / "routing.yaml", "522600"),
            RuleBook.from_file(), WorkingDayCalendar.from_file())


@pytest.fixture
def intake(store: SqliteStore, spec_and_router: tuple[Any, Router, RuleBook, WorkingDayCalendar]) -> IntakeService:
    spec, router, rules, calendar = spec_and_router
    return IntakeService(store, {ADAPTER_ID: spec}, router, rules, calendar)


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[str]:
    """Serve an app with uvicorn on a free loopback port, on the test's own event loop."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, access_log=False,
                                           lifespan="off", timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass(frozen=True)
class Gateway:
    """The gateway's SOAP face on loopback."""

    base_url: str
    store: SqliteStore
    context: SoapContext

    def soap_url(self, adapter_id: str = ADAPTER_ID) -> str:
        return f"{self.base_url}/soap/{adapter_id}"

    def wsdl_url(self, adapter_id: str = ADAPTER_ID) -> str:
        return self.soap_url(adapter_id) + "?wsdl"


@pytest.fixture
async def gateway(store: SqliteStore, intake: IntakeService) -> AsyncIterator[Gateway]:
    adapter = SoapAdapter(adapter_config())
    context = SoapContext.build({ADAPTER_ID: adapter}, intake, store.remember_nonce, MAX_BODY)
    app = FastAPI()
    app.state.soap = context
    app.include_router(soap_router())
    app.add_middleware(PushFastPath, routes=[SOAP_PUSH])  # as the gateway serves pushes
    async with serve(app) as url:
        yield Gateway(url, store, context)


@dataclass
class ZeepCall:
    """A zeep async proxy on the gateway's served WSDL, and the address zeep read from it."""

    proxy: Any
    address: str
    http: httpx.AsyncClient

    async def aclose(self) -> None:
        await self.http.aclose()


async def zeep_client(wsdl_url: str, wsse: Any = None, *, seconds: float = 10.0) -> ZeepCall:
    """Built as the tech notes say: WSDL loaded in a thread, AsyncServiceProxy on the binding QName."""
    http = httpx.AsyncClient(timeout=seconds, trust_env=False)

    def build() -> ZeepCall:
        loader = httpx.Client(timeout=seconds, trust_env=False)
        transport = AsyncTransport(client=http, wsdl_client=loader)
        client = zeep.AsyncClient(wsdl_url, transport=transport, settings=zeep_settings(), wsse=wsse)
        loader.close()
        (service,) = client.wsdl.services.values()
        (port,) = service.ports.values()
        address = port.binding_options["address"]
        return ZeepCall(AsyncServiceProxy(client, client.wsdl.bindings[BINDING], address=address), address, http)

    return await asyncio.to_thread(build)


@pytest.fixture
def province() -> Iterator[RunningProvince]:
    """The provincial 12345 system with the fixture work orders, requiring our UsernameToken."""
    state = Province12345(username=PROVINCE_USER, password=PROVINCE_PASSWORD)
    state.seed_fixtures()
    with run_in_thread(state) as running:
        yield running
