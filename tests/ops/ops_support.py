"""A real gateway for the ops specifications: demo configuration, a temp data dir, SQLite or a namespaced Redis."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from adapters.registry import build_adapters
from contracts.delivery import AttemptOutcome, AttemptReceipt
from gateway.app import create_app
from gateway.config import CreditLookupSettings, DemoSettings, EchoSettings, GatewaySettings, load_settings
from gateway.delivery.config import load_delivery_config
from gateway.ops.service import OpsService
from gateway.runtime import Components, Runtime, load_components
from gateway.store.base import Store
from gateway.store.postgres import PostgresStore
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SqliteStore
from gateway.tickets.deadlines import CHINA_TZ, deadline_status
from gateway.tickets.intake import IntakeOutcome, IntakeService
from gateway.tickets.status import StatusService
from simulators.peer import DEV_CREDENTIALS, serve_in_thread
from tests.store.postgres_schemas import give_back_schema, pool_settings, take_schema

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
FIXTURES = REPO / "mapping" / "fixtures"
REDIS_URL = "redis://127.0.0.1:6379/0"
PHONE_KEY = b"ops-tests-phone-hash-key"

TOKENS = {
    "viewer": "test-viewer-7a1c0f9e2b",
    "operator": "test-operator-5d3e8a4c61",
    "admin": "test-admin-0b9f6e2d7c",
}
TOKEN_ENV = {
    "HIG_OPS_TOKEN_VIEWER": TOKENS["viewer"],
    "HIG_OPS_TOKEN_OPERATOR": TOKENS["operator"],
    "HIG_OPS_TOKEN_ADMIN": TOKENS["admin"],
}
ENVIRONMENT = {**DEV_CREDENTIALS, **TOKEN_ENV}

# The complainant of mapping/fixtures/city-12345-rest/01-food-complaint.json, as the fixture writes it.
COMPLAINANT = {"name": "王小红", "phone": "13985012345", "address": "凯里市西门街道环城西路9号",
               "id_number": "522601200109098873"}
RESPONDENT = {"name": "凯里市惠民生活超市有限公司", "uscc": "91522601MA6DL4KQ33"}

_components: dict[str, Components] = {}


def base_settings(tmp: Path, *, store_kind: str = "sqlite", workers: bool = False,
                  delivery_file: Path | None = None, adapters_dir: Path | None = None,
                  config_dir: Path | None = None, echo_behind_after_seconds: int | None = None) -> GatewaySettings:
    """The demo configuration with a temp data dir, no simulators, no credit look-up, no pollers."""
    settings = load_settings(CONFIG / "gateway.yaml")
    update: dict[str, Any] = {
        "data_dir": tmp / "data", "workers": workers, "pollers": False, "demo": DemoSettings(simulators=False),
        "credit_lookup": CreditLookupSettings(url=None),
        "store": settings.store.model_copy(update={"kind": store_kind}),
    }
    if echo_behind_after_seconds is not None:
        update["echo"] = EchoSettings(behind_after_seconds=echo_behind_after_seconds)
    if delivery_file is not None:
        update["delivery_file"] = str(delivery_file)
    if adapters_dir is not None:
        update["adapters_dir"] = str(adapters_dir)
    if config_dir is not None:
        update["config_dir"] = config_dir
        update["config_file"] = config_dir / "gateway.yaml"
    return settings.model_copy(update=update)


def components_for(settings: GatewaySettings) -> Components:
    """Components of the demo configuration, compiled once per adapters folder (specs take seconds)."""
    key = str(settings.resolve(settings.adapters_dir))
    if key not in _components:
        _components[key] = load_components(settings)
    cached = _components[key]
    return dataclasses.replace(cached, settings=settings,
                               delivery=load_delivery_config(settings.resolve(settings.delivery_file)))


def build_runtime(settings: GatewaySettings, store: Store) -> Runtime:
    """What Runtime.build makes, on a given store and with cached components."""
    components = components_for(settings)
    adapters = build_adapters(components.adapter_configs)
    intake = IntakeService(store, components.specs, components.router, components.rules, components.calendar,
                           callbacks=adapters, jurisdiction=components.jurisdiction)
    status = StatusService(store, components.specs, components.router, adapters, components.rules,
                           components.calendar)
    return Runtime(components, store, adapters, intake, status)


def make_store(kind: str, tmp: Path, namespace: str) -> Store:
    """The store of a test gateway; `namespace` names its Redis key prefix or its PostgreSQL schema."""
    if kind == "redis":
        return RedisStore(REDIS_URL, PHONE_KEY, namespace=namespace)
    if kind == "postgres":
        return PostgresStore(pool_settings(namespace), PHONE_KEY)
    return SqliteStore(tmp / "data" / "gateway.db", PHONE_KEY)


async def drop_namespace(namespace: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


# -- partner payloads --------------------------------------------------------------------------------------

def fixture_payload(adapter_id: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / adapter_id / f"{name}.json").read_text(encoding="utf-8"))
    return data


def city_complaint(no: str, **changes: Any) -> dict[str, Any]:
    """The city 12345 food complaint under another number, with changed fields (dotted keys for nested ones)."""
    payload = copy.deepcopy(fixture_payload("city-12345-rest", "01-food-complaint"))
    payload["hotlineNo"] = no
    for key, value in changes.items():
        node = payload
        parts = key.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return payload


def china_time(day: date, hour: int = 10) -> str:
    return datetime(day.year, day.month, day.day, hour, 0, 0, tzinfo=CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def due_soon_receipt_day(runtime: Runtime) -> date:
    """A receipt day whose 7-working-day acceptance limit is due within the next two working days."""
    calendar = runtime.components.calendar
    rules = runtime.components.rules
    from gateway.tickets.deadlines import compute_deadlines

    today = datetime.now(CHINA_TZ).date()
    for back in range(1, 40):
        day = today - timedelta(days=back)
        received = datetime(day.year, day.month, day.day, 10, tzinfo=CHINA_TZ)
        [deadline] = compute_deadlines("02", received, rules, calendar)
        if deadline_status(deadline, datetime.now(UTC), calendar) == "due_soon":
            return day
    raise AssertionError("no receipt day gives a due-soon acceptance deadline")


# -- the gateway under test --------------------------------------------------------------------------------

@dataclass
class OpsGateway:
    """The gateway app with its lifespan running, an HTTP client on it, and helpers to make traffic."""

    app: FastAPI
    runtime: Runtime
    client: httpx.AsyncClient
    pushed: list[str] = field(default_factory=list)

    @property
    def service(self) -> OpsService:
        service: OpsService = self.app.state.ops
        return service

    @property
    def store(self) -> Store:
        return self.runtime.store

    @staticmethod
    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[role]}"}

    async def get(self, path: str, role: str | None = "viewer", **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params or None, headers=self.auth(role) if role else {})

    async def post(self, path: str, role: str | None = "operator", body: Any = None) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth(role) if role else {})

    async def push(self, payload: dict[str, Any], adapter_id: str = "city-12345-rest") -> IntakeOutcome:
        """Through the real intake, as the inbound route or a poller hands a payload over."""
        raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        outcome = await self.runtime.intake.accept(adapter_id, payload, raw_body=raw,
                                                   content_type="application/json; charset=utf-8")
        if outcome.ticket_id:
            self.pushed.append(outcome.ticket_id)
        return outcome

    async def kill_delivery(self, destination: str = "national", status_code: int = 400) -> str:
        """Claim the next delivery of a lane and dead-letter it as a worker does after a permanent failure."""
        [claim] = await self.store.claim(destination, "test-worker", 30)
        await self.store.settle_dead(claim, AttemptReceipt(
            delivery_id=claim.delivery_id, number=claim.attempts + 1, started_at=datetime.now(UTC),
            duration_ms=8.0, status_code=status_code, error_class=f"http_{status_code}",
            outcome=AttemptOutcome.PERMANENT, response_body='{"error":"字段不合规"}'))
        return claim.delivery_id


@asynccontextmanager
async def running_gateway(tmp: Path, *, store_kind: str = "sqlite", workers: bool = False,
                          delivery_file: Path | None = None, adapters_dir: Path | None = None,
                          config_dir: Path | None = None,
                          echo_behind_after_seconds: int | None = None) -> AsyncIterator[OpsGateway]:
    namespace = f"test-ops-{uuid.uuid4().hex[:12]}" if store_kind == "redis" else take_schema("test_ops")
    settings = base_settings(tmp, store_kind=store_kind, workers=workers, delivery_file=delivery_file,
                             adapters_dir=adapters_dir, config_dir=config_dir,
                             echo_behind_after_seconds=echo_behind_after_seconds)
    runtime = build_runtime(settings, make_store(store_kind, tmp, namespace))
    app = create_app(settings, runtime=runtime)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test") as client:
                yield OpsGateway(app=app, runtime=runtime, client=client)
    finally:
        if store_kind == "redis":
            await drop_namespace(namespace)
        if store_kind == "postgres":
            await give_back_schema(namespace)


# -- a receiver for the delivery lanes ---------------------------------------------------------------------

@dataclass
class Receiver:
    """Every destination of the gateway on one loopback server: answers `refuse_status` (400, permanent, unless told
    otherwise) or 200 on demand."""

    url: str = ""
    accept: bool = True
    refuse_status: int = 400
    received: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{lane:path}")
        async def take(lane: str, request: Request) -> JSONResponse:
            await request.body()
            with self.lock:
                self.received.append(lane)
                n = len(self.received)
            if not self.accept:
                return JSONResponse({"error": "schema", "message": "字段不合规"}, status_code=self.refuse_status)
            return JSONResponse({"national_registration_no": f"1231552260120240315{n:06d}"})

        return app


@contextmanager
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    with serve_in_thread(r.app(), name="ops-test-receiver") as url:
        r.url = url
        yield r


def delivery_file_for(tmp: Path, url: str, retry: dict[str, Any] | None = None) -> Path:
    """config/delivery.yaml with every lane sent to `url`/<lane>, quick retries (or `retry`) and no breaker trips."""
    data = yaml.safe_load((CONFIG / "delivery.yaml").read_text(encoding="utf-8"))
    data["engine"] = {"reaper_interval": "1s", "stop_grace": "1s", "idle_poll_min": 0.05, "idle_poll_max": 0.2}
    for destination in data["destinations"]:
        destination["url"] = f"{url}/{destination['name']}"
        if retry is not None:
            destination["retry"] = retry
    path = tmp / "delivery.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


# -- matters the jurisdiction screen does not simply accept ------------------------------------------------

NOISE = ("广场舞噪音扰民", "小区旁边广场每天晚上七点到十点跳广场舞，音响开得很大，老人小孩无法休息，多次沟通无果。")
MEDICAL_BEAUTY = ("医美机构注射玻尿酸后出现结节",
                  "在某医疗美容诊所注射玻尿酸后面部出现结节，诊所说是个人体质问题，拒绝处理。")
CLINIC = {"name": "凯里某医疗美容诊所有限公司", "creditCode": "91522601MA6DL4KQ33", "address": "凯里市韶山南路8号"}


def city_matter(no: str, title: str, content: str, *, respondent: dict[str, str] | None = None) -> dict[str, Any]:
    """A city 12345 order about another matter than the fixture's food complaint (no goods; a respondent or none)."""
    payload = city_complaint(no, appealTitle=title, appealContent=content, appealRequest="请尽快处理")
    payload.pop("goods")
    if respondent is None:
        payload.pop("respondent")
    else:
        payload["respondent"] = respondent
    return payload


T = TypeVar("T")


def on_store(gateway_yaml: Path, work: Callable[[Store], Awaitable[T]]) -> T:
    """`work` on the store a gateway.yaml names, opened and closed around it in a loop of its own (as the ops
    command line opens it beside a running gateway)."""

    async def run() -> T:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.store.open()
        try:
            return await work(runtime.store)
        finally:
            await runtime.store.close()

    return asyncio.run(run())
