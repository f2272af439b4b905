"""A real gateway for the adapter specifications: inbound route, intake, SQLite store, served on loopback."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI

from adapters.config import AdapterConfig
from adapters.loading import load_adapters, mapping_specs_for
from gateway.http.fast_path import PushFastPath
from gateway.http.inbound import INBOUND_PUSH, InboundContext, inbound_router
from gateway.store.base import Store
from gateway.store.sqlite import SqliteStore
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar
from gateway.tickets.intake import IntakeService
from gateway.tickets.jurisdiction import JurisdictionRules
from gateway.tickets.routing import Router
from simulators.peer import serve_in_thread

REPO = Path(__file__).resolve().parents[2]
DEMO_ADAPTERS = REPO / "config" / "adapters"
ROUTING_FILE = REPO / "config" / "routing.yaml"
JURISDICTION_FILE = REPO / "config" / "jurisdiction.yaml"
SPECS_DIR = REPO / "mapping" / "specs"
PHONE_KEY = b"adapter-tests-phone-key"
T = TypeVar("T")


def build_intake(store: Store, configs: dict[str, AdapterConfig], routing_file: Path = ROUTING_FILE,
                 jurisdiction_file: Path | None = None) -> IntakeService:
    """The real intake service over the adapters' mapping specs; with the jurisdiction screen when given its rules."""
    canonical = {i: c for i, c in configs.items() if c.enabled and c.is_canonical}
    jurisdiction = None if jurisdiction_file is None else JurisdictionRules.from_file(jurisdiction_file)
    return IntakeService(store, mapping_specs_for(configs), Router.from_files(routing_file, "522600"),
                         RuleBook.from_file(), WorkingDayCalendar.from_file(), canonical=canonical,
                         jurisdiction=jurisdiction)


@dataclass
class GatewayUnderTest:
    """A gateway serving the inbound route in a thread; `run` executes a coroutine on its loop (store queries)."""

    url: str
    app: FastAPI
    configs: dict[str, AdapterConfig]

    def inbound(self, adapter_id: str) -> str:
        return f"{self.url}/api/v1/inbound/{adapter_id}/tickets"

    @property
    def store(self) -> Store:
        store: Store = self.app.state.store
        return store

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.app.state.loop).result(timeout=10)


def gateway_app(adapters_dir: Path, data_dir: Path, *, max_body_bytes: int, routing_file: Path = ROUTING_FILE,
                jurisdiction_file: Path | None = None) -> tuple[FastAPI, dict[str, AdapterConfig]]:
    configs = load_adapters(adapters_dir)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = SqliteStore(data_dir / "gateway.db", PHONE_KEY)
        await store.open()
        intake = build_intake(store, configs, routing_file, jurisdiction_file)
        app.state.loop = asyncio.get_running_loop()
        app.state.store = store
        app.state.inbound = InboundContext.build(configs, intake, max_body_bytes)
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(lifespan=lifespan)
    app.include_router(inbound_router())
    app.add_middleware(PushFastPath, routes=[INBOUND_PUSH])  # as the gateway serves pushes
    return app, configs


@contextmanager
def serve_gateway(data_dir: Path, adapters_dir: Path = DEMO_ADAPTERS, *, max_body_bytes: int = 64 * 1024,
                  routing_file: Path = ROUTING_FILE,
                  jurisdiction_file: Path | None = None) -> Iterator[GatewayUnderTest]:
    app, configs = gateway_app(adapters_dir, data_dir, max_body_bytes=max_body_bytes, routing_file=routing_file,
                               jurisdiction_file=jurisdiction_file)
    with serve_in_thread(app, name="gateway-under-test") as url:
        yield GatewayUnderTest(url=url, app=app, configs=configs)


def copy_adapter_dir(target: Path, *names: str) -> Path:
    """A config folder with some of the demo adapter files (by id), to change in a test."""
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(DEMO_ADAPTERS / f"{name}.yaml", target / f"{name}.yaml")
    return target
