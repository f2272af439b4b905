"""Server processes for the benchmarks: the gateway as `python main.py serve`, the bare baseline, the receiver,
the national simulator; each on a free loopback port, its output in a log file, stopped by its own pid."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import yaml

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable

# One phone hash key for every gateway and store of a benchmark run, as every gateway sharing a store must have
# (a Redis store refuses a gateway with another key); the benchmark process and its children all read it.
os.environ.setdefault("HIG_PHONE_HASH_KEY", secrets.token_hex(32))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    """A server process on loopback."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mb(self) -> float:
        return rss_mb(self.pid)

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def rss_mb(pid: int) -> float:
    """Resident set size of one process, in MiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spawn(name: str, args: list[str], port: int, log_dir: Path, *, env: Mapping[str, str] | None = None,
          ready_path: str = "/healthz", timeout: float = 60.0) -> Server:
    """Start `python args…` and wait until GET ready_path answers below 500."""
    log = log_dir / f"{name}.log"
    handle = log.open("wb")
    process = subprocess.Popen([PYTHON, *args], cwd=REPO, env=dict(env or os.environ), stdout=handle,
                               stderr=subprocess.STDOUT, start_new_session=True)
    handle.close()
    server = Server(name, port, process, log)
    deadline = time.monotonic() + timeout
    with httpx.Client(trust_env=False, timeout=2.0) as client:
        while True:
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited with {process.returncode} before it was ready:\n{tail}")
            try:
                if client.get(f"{server.url}{ready_path}").status_code < 500:
                    return server
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                server.kill()
                raise RuntimeError(f"{name} was not ready within {timeout:.0f} s; see {log}")
            time.sleep(0.1)


@contextmanager
def running(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


# -- the gateway ----------------------------------------------------------------------------------------

@dataclass
class GatewayEnv:
    """Environment of gateway processes sharing one data directory (secrets, SQLite file) and store."""

    data_dir: Path
    env: dict[str, str]

    def for_port(self, port: int, **extra: str) -> dict[str, str]:
        return {**self.env, "HIG_SERVER__PORT": str(port), **extra}


def gateway_env(data_dir: Path, *, store: str = "sqlite", redis_url: str | None = None, workers: bool = False,
                delivery_file: Path | None = None, log_level: str = "INFO",
                store_env: Mapping[str, str] | None = None) -> GatewayEnv:
    """The demo configuration with HIG_* overrides: data under `data_dir`, no simulators, no pollers,
    generated partner credentials (adapters.secrets.ensure_demo_credentials) exported to the children."""
    from adapters.loading import load_adapters
    from adapters.secrets import ensure_demo_credentials
    from gateway.config import load_settings

    overrides = {
        "HIG_DATA_DIR": str(data_dir),
        "HIG_DEMO__SIMULATORS": "false",
        "HIG_POLLERS": "false",
        "HIG_WORKERS": "true" if workers else "false",
        "HIG_STORE__KIND": store,
        "HIG_LOGGING__LEVEL": log_level,
    }
    if redis_url is not None:
        overrides["HIG_STORE__REDIS_URL"] = redis_url
    if delivery_file is not None:
        overrides["HIG_DELIVERY_FILE"] = str(delivery_file)
    overrides.update(store_env or {})
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        settings = load_settings()
        ensure_demo_credentials(settings.resolved_data_dir, load_adapters(settings.resolve(settings.adapters_dir)))
        env = dict(os.environ)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return GatewayEnv(data_dir, env)


def start_gateway(genv: GatewayEnv, log_dir: Path, *, name: str = "gateway", port: int | None = None,
                  **extra: str) -> Server:
    port = port or free_port()
    return spawn(name, ["main.py", "serve"], port, log_dir, env=genv.for_port(port, **extra), ready_path="/readyz")


def national_token(genv: GatewayEnv) -> str:
    """The bearer token the gateway sends to the national platform (generated under its data dir)."""
    from gateway.config import load_settings
    from gateway.runtime import national_token as token_of

    saved = os.environ.get("HIG_DATA_DIR")
    os.environ["HIG_DATA_DIR"] = str(genv.data_dir)
    try:
        return token_of(load_settings())
    finally:
        if saved is None:
            os.environ.pop("HIG_DATA_DIR", None)
        else:
            os.environ["HIG_DATA_DIR"] = saved


def delivery_file(path: Path, national_url: str, *, concurrency: int | None = None, **national: object) -> Path:
    """config/delivery.yaml with the national lane pointed at `national_url` (other lanes unchanged)."""
    config = yaml.safe_load((REPO / "config" / "delivery.yaml").read_text(encoding="utf-8"))
    for destination in config["destinations"]:
        if destination["name"] == "national":
            destination["url"] = national_url
            if concurrency is not None:
                destination["concurrency"] = concurrency
            destination.update(national)
    path.write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


# -- peers ---------------------------------------------------------------------------------------------

def start_baseline(log_dir: Path, env: Mapping[str, str] | None = None) -> Server:
    port = free_port()
    return spawn("baseline", ["-m", "bench.common.baseline", "--port", str(port)], port, log_dir, env=env)


def start_receiver(log_dir: Path) -> Server:
    port = free_port()
    return spawn("receiver", ["-m", "simulators.receiver", "--port", str(port)], port, log_dir,
                 ready_path="/_receiver/stats")


def receiver_stats(server: Server) -> dict[str, Any]:
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        stats: dict[str, Any] = client.get(f"{server.url}/_receiver/stats").json()
        return stats


def receiver_reset(server: Server) -> None:
    with httpx.Client(trust_env=False, timeout=10.0) as client:
        client.post(f"{server.url}/_receiver/reset")


def start_national(log_dir: Path, token: str) -> Server:
    port = free_port()
    return spawn("national", ["-m", "simulators.national", "--port", str(port), "--token", token,
                              "--log-level", "WARNING"], port, log_dir)


def machine_load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


@contextmanager
def redis_db(url: str) -> Iterator[dict[str, object]]:
    """A Redis database for one benchmark: refused unless empty, emptied afterwards; yields INFO memory."""
    import redis

    client = redis.Redis.from_url(url)
    if client.dbsize():  # refused before the clean-up below: another user's keys are theirs, not emptied
        client.close()
        raise SystemExit(f"{url} is not empty: give the benchmark a database of its own (--redis-url)")
    try:
        yield dict(client.info("memory"))
    finally:
        keys = list(client.scan_iter(count=10_000))
        for start in range(0, len(keys), 10_000):
            client.delete(*keys[start:start + 10_000])
        client.close()


def next_redis_db(url: str) -> str:
    """The database after `url`'s on the same Redis (redis://host:port/11 -> /12): the second gateway of a
    comparison keeps its data there. On SQLite each gateway of a comparison has a file of its own; sharing one
    Redis database made the two gateways share the `alerts` lock too, so that only the first started ran the alert
    monitor's rounds (the deadline alerts read every ticket due on the day the benchmark's tickets are due) and
    paid them for both, on the side the comparison charges the feature to."""
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{db + 1}"))


POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
STORE_CHOICES = ("sqlite", "redis", "postgres", "both", "all")


def stores_of(choice: str) -> tuple[str, ...]:
    """The stores a `--store` choice names: "both" is SQLite and Redis (as before PostgreSQL), "all" adds it."""
    return {"both": ("sqlite", "redis"), "all": ("sqlite", "redis", "postgres")}.get(choice, (choice,))


@contextmanager
def store_backend(store: str, *, redis_url: str, postgres_url: str = POSTGRES_URL) -> Iterator[dict[str, str]]:
    """Where one benchmark configuration keeps its data, as HIG_* overrides for its gateways: a Redis database of its
    own (refused unless empty, emptied afterwards), a PostgreSQL schema of its own (dropped afterwards), or the
    SQLite file under the data directory."""
    if store == "redis":
        with redis_db(redis_url):
            yield {"HIG_STORE__REDIS_URL": redis_url}
        return
    if store != "postgres":
        yield {}
        return
    import asyncio

    import asyncpg

    schema = f"bench_{secrets.token_hex(6)}"

    async def drop() -> None:
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    try:
        yield {"HIG_STORE__POSTGRES_URL": postgres_url, "HIG_STORE__POSTGRES_SCHEMA": schema}
    finally:
        asyncio.run(drop())


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its threads so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
