"""What the partner simulators share: a uvicorn server in a thread, verified callback recording, fixtures, faults."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from standardwebhooks import Webhook, WebhookVerificationError

from adapters.secrets import demo_secret

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "mapping" / "fixtures"
DEFAULT_GATEWAY_URL = "http://127.0.0.1:8315"

# Last-resort credentials of a simulator run with neither the variable nor a demo gateway's generated file.
# Anyone reading this file knows them: they protect nothing and must never be used outside a demo.
DEV_CREDENTIALS: dict[str, str] = {
    "PARTNER_CITY12345_API_KEY": "dev-city12345-push-key",
    "PARTNER_CITY12345_CALLBACK_SECRET": "whsec_ZGV2LWNpdHkxMjM0NS1jYWxsYmFjay1rZXkhIQ==",
    "PARTNER_LEGACY_OUTBOUND_KEY": "dev-legacy-pull-key",
    "PARTNER_LEGACY_CALLBACK_SECRET": "whsec_ZGV2LWxlZ2FjeS1jYWxsYmFjay1rZXktMTIzIQ==",
    "PARTNER_ENFORCEMENT_HMAC_SECRET": "dev-enforcement-hmac-secret",
    "PARTNER_ENFORCEMENT_CALLBACK_SECRET": "whsec_ZGV2LWVuZm9yY2VtZW50LWNhbGxiYWNrLWtleSE=",
    "PARTNER_CREDIT_OUTBOUND_KEY": "dev-credit-pull-key",
    "PARTNER_CREDIT_CALLBACK_SECRET": "whsec_ZGV2LWNyZWRpdC1jYWxsYmFjay1rZXktNDU2IQ==",
    "PARTNER_EMERGENCY_API_KEY": "dev-emergency-push-key",
    "PARTNER_EMERGENCY_CALLBACK_SECRET": "whsec_ZGV2LWVtZXJnZW5jeS1jYWxsYmFjay1rZXkhIQ==",
    "PARTNER_CANONICAL_API_KEY": "dev-canonical-push-key",
}


def credential(name: str) -> str:
    """A simulator's credential: the environment variable, else the one the demo gateway generated under its
    data dir (so a simulator started on its own pairs with `python main.py`), else its development default."""
    return demo_secret(name, name.lower()) or DEV_CREDENTIALS[name]


def load_fixtures(adapter_id: str) -> dict[str, dict[str, Any]]:
    """The mapping fixtures of one partner (its own payload shape), by name, in file order.

    Only the payloads: `NN-name.json` (UTF-8) and `NN-name.gbk.json` (GBK), not the `.expected.json`,
    `.errors.json`, … beside them."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted((FIXTURES_DIR / adapter_id).glob("*.json")):
        name, _, variant = path.stem.partition(".")
        if variant not in ("", "gbk"):
            continue
        found[name] = json.loads(path.read_bytes().decode("gb18030" if variant == "gbk" else "utf-8"))
    return found


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# -- signed callbacks ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReceivedCallback:
    """One status callback as the partner received it."""

    received_at: str
    webhook_id: str | None
    body: Any  # the parsed JSON (or the text when it is not JSON)
    verified: bool  # the Standard Webhooks signature checked out with the partner's secret
    duplicate: bool  # a webhook-id seen before: a retry of a callback already received
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RefusedCallback:
    received_at: str
    reason: str
    headers: dict[str, str] = field(default_factory=dict)


class CallbackRecorder:
    """Receives status callbacks, verifies them with the reference `standardwebhooks` library, keeps them."""

    def __init__(self, secret: str | None) -> None:
        self._webhook = Webhook(secret) if secret else None
        self._lock = threading.Lock()
        self._received: list[ReceivedCallback] = []
        self._refused: list[RefusedCallback] = []
        self._seen: set[str] = set()
        self.answer_status = 200  # what to answer a good callback with; set e.g. 503 to make the gateway retry

    def receive(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Verify and record one callback; the status and JSON to answer with."""
        lowered = {k.lower(): v for k, v in headers.items()}
        kept = {k: v for k, v in lowered.items() if k.startswith("webhook-") or k in ("idempotency-key",
                                                                                       "content-type")}
        if self._webhook is not None:
            try:
                self._webhook.verify(body, lowered, json_parse=False)
            except (WebhookVerificationError, ValueError) as err:
                with self._lock:
                    self._refused.append(RefusedCallback(received_at=now_iso(), reason=str(err), headers=kept))
                return 401, {"error": "bad_signature", "message": str(err)}
        try:
            parsed: Any = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            parsed = body.decode("utf-8", "replace")
        msg_id = lowered.get("webhook-id")
        with self._lock:
            duplicate = msg_id is not None and msg_id in self._seen
            if msg_id is not None:
                self._seen.add(msg_id)
            status = self.answer_status
            if status < 300:
                self._received.append(ReceivedCallback(received_at=now_iso(), webhook_id=msg_id, body=parsed,
                                                       verified=self._webhook is not None, duplicate=duplicate,
                                                       headers=kept))
        if status >= 300:
            return status, {"error": "unavailable", "message": "the simulator was told to refuse callbacks"}
        return 200, {"received": True, "duplicate": duplicate}

    def received(self) -> list[ReceivedCallback]:
        with self._lock:
            return list(self._received)

    def refused(self) -> list[RefusedCallback]:
        with self._lock:
            return list(self._refused)

    def snapshot(self) -> dict[str, Any]:
        return {"callbacks": [asdict(c) for c in self.received()], "refused": [asdict(r) for r in self.refused()]}


def mount_callbacks(app: FastAPI, recorder: CallbackRecorder, path: str = "/callbacks", *,
                    faults: Faults | None = None) -> None:
    """`POST <path>` receives signed callbacks (failing or slow with `faults`); `GET /sim/callbacks` lists them."""

    @app.post(path, tags=["callbacks"])
    async def receive_callback(request: Request) -> JSONResponse:
        if faults is not None:
            faulty = await apply_faults(faults)
            if faulty is not None:
                return faulty
        status, answer = recorder.receive(dict(request.headers), await request.body())
        return JSONResponse(answer, status_code=status)

    @app.get("/sim/callbacks", tags=["simulator"])
    async def list_callbacks() -> dict[str, Any]:
        return recorder.snapshot()


# -- faults -------------------------------------------------------------------------------------------
class Faults(BaseModel):
    """How a simulator misbehaves on its partner API: down (an error status) and/or slow."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    down: bool = False
    status: int = Field(default=503, ge=400, le=599)
    latency_seconds: float = Field(default=0.0, ge=0, le=600)


def mount_faults(app: FastAPI, faults: Faults) -> None:
    """`GET/POST /sim/faults` reads or changes the fault plan (only the given fields change)."""

    @app.get("/sim/faults", tags=["simulator"])
    async def get_faults() -> dict[str, Any]:
        return faults.model_dump()

    @app.post("/sim/faults", tags=["simulator"])
    async def set_faults(request: Request) -> JSONResponse:
        try:
            change = json.loads(await request.body() or b"{}")
            merged = Faults.model_validate(faults.model_dump() | dict(change))
        except (ValueError, TypeError) as err:
            return JSONResponse({"error": "bad_request", "message": str(err)}, status_code=400)
        for name, value in merged.model_dump().items():
            setattr(faults, name, value)
        return JSONResponse(faults.model_dump())


async def apply_faults(faults: Faults) -> JSONResponse | None:
    """Sleep the configured latency; an error answer while down (None: serve normally)."""
    if faults.latency_seconds:
        await asyncio.sleep(faults.latency_seconds)
    if faults.down:
        return JSONResponse({"error": "unavailable", "message": "the simulator is down on purpose"},
                            status_code=faults.status)
    return None


def idempotency_key(request: Request) -> str | None:
    return request.headers.get("idempotency-key")


# -- pushing to the gateway -------------------------------------------------------------------------
@dataclass(frozen=True)
class PushResult:
    """What the gateway answered to one push."""

    status: int
    body: Any
    sent_at: str
    payload: Any = None

    @property
    def ticket_id(self) -> str | None:
        return self.body.get("ticket_id") if isinstance(self.body, dict) else None


def inbound_url(gateway_url: str, adapter_id: str) -> str:
    return f"{gateway_url.rstrip('/')}/api/v1/inbound/{adapter_id}/tickets"


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def hmac_headers(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """X-Timestamp and X-Signature (sha256=hex HMAC-SHA256 over "timestamp.body"), as the gateway checks them."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode("utf-8"), stamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return {"X-Timestamp": stamp, "X-Signature": f"sha256={digest}"}


# -- serving ----------------------------------------------------------------------------------------
def build_server(app: FastAPI, host: str, port: int) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False,
                                         proxy_headers=False, lifespan="on", timeout_graceful_shutdown=1))


@contextmanager
def serve_in_thread(app: FastAPI, *, name: str, host: str = "127.0.0.1", port: int = 0,
                    startup_timeout: float = 10.0) -> Iterator[str]:
    """Serve `app` in a daemon thread (port 0: a free one); yields the base URL, stops on exit."""
    server = build_server(app, host, port)
    thread = threading.Thread(target=server.run, name=name, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(startup_timeout)
            raise RuntimeError(f"simulator {name} did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(startup_timeout)


def run_cli(app: FastAPI, *, name: str, host: str, port: int, after_start: Callable[[], None] | None = None,
            report: Callable[[], Sequence[Any]] | None = None) -> None:
    """Serve until Ctrl-C (the command line); `after_start` runs once listening, e.g. pushing the seed tickets."""
    with serve_in_thread(app, name=name, host=host, port=port) as url:
        print(json.dumps({"event": f"{name} simulator listening", "url": url, "docs": f"{url}/docs"},
                         ensure_ascii=False), flush=True)
        if after_start is not None:
            after_start()
            for item in report() if report is not None else ():
                print(json.dumps(asdict(item) if is_dataclass(item) and not isinstance(item, type) else item,
                                 ensure_ascii=False, default=str), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


class Pusher:
    """Pushes tickets to the gateway's inbound route as a partner does: with an API key or an HMAC signature."""

    def __init__(self, gateway_url: str, adapter_id: str, *, api_key: str | None = None,
                 hmac_secret: str | None = None, timeout: float = 10.0) -> None:
        if api_key is None and hmac_secret is None:
            raise ValueError("a pusher needs an api_key or an hmac_secret")
        self.gateway_url = gateway_url
        self.adapter_id = adapter_id
        self.api_key = api_key
        self.hmac_secret = hmac_secret
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pushes: list[PushResult] = []

    def push(self, payload: Any) -> PushResult:
        """POST one ticket in the partner's shape; the gateway's answer (network errors become status 0)."""
        body = encode_json(payload)
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.api_key is not None:
            headers["X-Api-Key"] = self.api_key
        else:
            assert self.hmac_secret is not None
            headers.update(hmac_headers(self.hmac_secret, body))
        sent_at = now_iso()
        try:
            response = httpx.post(inbound_url(self.gateway_url, self.adapter_id), content=body, headers=headers,
                                  timeout=self.timeout, trust_env=False)
        except httpx.HTTPError as err:
            result = PushResult(status=0, body={"error": type(err).__name__, "message": str(err)}, sent_at=sent_at,
                                payload=payload)
        else:
            try:
                answer: Any = response.json()
            except ValueError:
                answer = response.text
            result = PushResult(status=response.status_code, body=answer, sent_at=sent_at, payload=payload)
        with self._lock:
            self._pushes.append(result)
        return result

    def pushes(self) -> list[PushResult]:
        with self._lock:
            return list(self._pushes)


_ISSUED_NUMBERS: set[str] = set()
_ISSUED_LOCK = threading.Lock()
_DRAWS_BEFORE_GIVING_UP = 1000


def fresh_number(number: str, rng: random.Random | None = None) -> str:
    """A new ticket number in the same shape: the trailing digits replaced by random ones.

    A number is never handed out twice in one process: two tests drawing the same six digits would make the second
    push a repeat of the first (a hostile-input run failed that way once in a thousand).
    """
    chooser = rng or random.Random()
    digits = len(number) - len(number.rstrip("0123456789"))
    with _ISSUED_LOCK:
        for _ in range(_DRAWS_BEFORE_GIVING_UP):
            if digits == 0:
                candidate = f"{number}-{chooser.randrange(10**6):06d}"
            else:
                candidate = number[:-digits] + "".join(chooser.choice("0123456789") for _ in range(digits))
            if candidate not in _ISSUED_NUMBERS:
                _ISSUED_NUMBERS.add(candidate)
                return candidate
    raise RuntimeError(f"no fresh number left in the shape of {number!r}")


def set_path(payload: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    target = payload
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value


def get_path(payload: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(payload, dict):
            return None
        payload = payload.get(key)
    return payload


def with_fresh_number(payload: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """A deep copy of a seed ticket under a new ticket number, so it is a new ticket and not a repeat."""
    copy: dict[str, Any] = json.loads(json.dumps(payload))
    current = get_path(copy, path)
    set_path(copy, path, fresh_number(str(current) if current is not None else "SIM"))
    return copy


class SeedSource(Protocol):
    """A polled simulator's queue: records added as given or from a seed fixture (under a fresh number)."""

    fixtures: dict[str, dict[str, Any]]

    def add(self, record: dict[str, Any]) -> int: ...

    def add_fixture(self, name: str, *, fresh: bool = False) -> int: ...


def mount_seed(app: FastAPI, path: str, source: SeedSource, *, item: str, answer: str) -> None:
    """`POST <path>` {item: {...}} or {"fixture": name, "fresh": true} queues a record; answers {answer: n}."""

    async def add_seed(request: Request) -> JSONResponse:
        try:
            order = json.loads(await request.body() or b"{}")
        except ValueError:
            order = None
        if not isinstance(order, dict):
            order = {}
        if isinstance(order.get(item), dict):
            number = source.add(order[item])
        elif order.get("fixture") in source.fixtures:
            number = source.add_fixture(order["fixture"], fresh=bool(order.get("fresh")))
        else:
            return JSONResponse({"error": "bad_request", "message": f"give a {item}, or a fixture of: "
                                 f"{', '.join(source.fixtures)}"}, status_code=400)
        return JSONResponse({answer: number})

    app.add_api_route(path, add_seed, methods=["POST"], tags=["simulator"],
                      summary=f'Queue a {item}: {{"{item}": {{...}}}} or {{"fixture": name, "fresh": true}}')


def mount_push(app: FastAPI, pusher: Pusher, seeds: dict[str, dict[str, Any]], number_path: tuple[str, ...]) -> None:
    """`POST /sim/push` {"fixture": name, "fresh": true} or {"ticket": {...}}; `GET /sim/pushes`, `/sim/tickets`."""

    @app.post("/sim/push", tags=["simulator"])
    async def push(request: Request) -> JSONResponse:
        try:
            order = json.loads(await request.body() or b"{}")
        except ValueError as err:
            return JSONResponse({"error": "bad_request", "message": str(err)}, status_code=400)
        if not isinstance(order, dict):
            return JSONResponse({"error": "bad_request", "message": "send a JSON object"}, status_code=400)
        if "ticket" in order:
            payload = order["ticket"]
        elif order.get("fixture") in seeds:
            payload = seeds[order["fixture"]]
            if order.get("fresh"):
                payload = with_fresh_number(payload, number_path)
        else:
            return JSONResponse({"error": "bad_request", "message": f"give a ticket, or a fixture of: "
                                 f"{', '.join(seeds)}"}, status_code=400)
        result = await asyncio.to_thread(pusher.push, payload)
        return JSONResponse(asdict(result))

    @app.get("/sim/pushes", tags=["simulator"])
    async def pushes() -> list[dict[str, Any]]:
        return [asdict(p) for p in pusher.pushes()]

    @app.get("/sim/tickets", tags=["simulator"])
    async def tickets() -> dict[str, Any]:
        return seeds


# -- receiving deliveries from the gateway ----------------------------------------------------------
@dataclass(frozen=True)
class Delivered:
    """One delivery the partner received from the gateway (a routed ticket, a closed case…)."""

    number: str  # the partner's own number for it (case no, dispatch no…)
    idempotency_key: str | None
    received_at: str
    body: Any
    times: int = 1  # how often it arrived: more than one means the gateway retried


class Inbox:
    """Deliveries received, deduplicated on Idempotency-Key (a retry gets the same number back)."""

    def __init__(self, number_prefix: str, *, api_key: str | None = None) -> None:
        self.number_prefix = number_prefix
        self.api_key = api_key  # when set, deliveries must carry it in X-Api-Key
        self._lock = threading.Lock()
        self._items: list[Delivered] = []
        self._by_key: dict[str, int] = {}

    def receive(self, key: str | None, body: Any) -> tuple[Delivered, bool]:
        """The delivery (new or the earlier one with this key) and whether it is a repeat."""
        with self._lock:
            if key is not None and key in self._by_key:
                index = self._by_key[key]
                earlier = self._items[index]
                self._items[index] = Delivered(**{**asdict(earlier), "times": earlier.times + 1})
                return self._items[index], True
            item = Delivered(number=f"{self.number_prefix}{len(self._items) + 1:06d}", idempotency_key=key,
                             received_at=now_iso(), body=body)
            if key is not None:
                self._by_key[key] = len(self._items)
            self._items.append(item)
            return item, False

    def items(self) -> list[Delivered]:
        with self._lock:
            return list(self._items)

    def find(self, number: str) -> Delivered | None:
        return next((item for item in self.items() if item.number == number), None)


def mount_inbox(app: FastAPI, inbox: Inbox, path: str, *, faults: Faults | None = None,
                number_field: str = "number") -> None:
    """`POST <path>` receives deliveries from the gateway; `GET /sim/inbox` lists them."""

    @app.post(path, tags=["partner API"])
    async def receive(request: Request) -> JSONResponse:
        if inbox.api_key is not None and not hmac.compare_digest(
                request.headers.get("x-api-key", "").encode("utf-8"), inbox.api_key.encode("utf-8")):
            return JSONResponse({"error": "unauthorized", "message": "X-Api-Key is missing or wrong"},
                                status_code=401)
        if faults is not None:
            faulty = await apply_faults(faults)
            if faulty is not None:
                return faulty
        try:
            body = json.loads(await request.body())
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            return JSONResponse({"error": "bad_request", "message": f"not JSON: {err}"}, status_code=400)
        item, repeat = inbox.receive(request.headers.get("idempotency-key"), body)
        return JSONResponse({number_field: item.number, "repeat": repeat}, status_code=200 if repeat else 201)

    @app.get("/sim/inbox", tags=["simulator"])
    async def list_inbox() -> list[dict[str, Any]]:
        return [asdict(item) for item in inbox.items()]
