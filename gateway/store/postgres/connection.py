"""The PostgreSQL store's connections: one asyncpg pool with bounded waits, its errors as store errors, and the
LISTEN connection that wakes lanes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from gateway.store.errors import StoreBusy, StoreUnavailable

log = logging.getLogger(__name__)

# What a lost or refused connection looks like from asyncpg: the server is down, restarting or shutting down.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset (ConnectionError is one)
    asyncpg.PostgresConnectionError,  # CannotConnectNow (starting up), connection failures
    asyncpg.InterfaceError,  # ConnectionDoesNotExistError: the connection was closed mid-operation
    asyncpg.AdminShutdownError,  # "terminating connection due to administrator command"
    asyncpg.CannotConnectNowError,
    asyncpg.CrashShutdownError,
)


LISTENER_NAME = "hotline-interop-gateway lanes"  # application_name of the LISTEN connection

_CLOSE_FAILED: tuple[type[BaseException], ...] = (TimeoutError, *_UNAVAILABLE)

# A connection as the pool hands it out (a proxy) or as made on its own (the listener's, a migration's).
Conn: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


@dataclass(frozen=True)
class PoolSettings:
    url: str
    schema: str
    size: int = 10
    acquire_timeout: float = 5.0  # how long a request waits for a free connection
    connect_timeout: float = 5.0
    command_timeout: float = 30.0


async def _rolled_back(conn: asyncpg.Connection) -> None:
    """What a connection needs before the pool lends it again: a transaction left open (a request cancelled inside
    it) rolled back. asyncpg's default reset also sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL`
    on every release, undoing nothing this store does (its advisory locks are transaction-scoped, it LISTENs on a
    connection of its own, its session settings are fixed at connect, it opens no cursor outside a transaction):
    a round trip more per pooled statement, measured at 344 against 204 µs of the client's CPU per statement."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class Connections:
    """A pool statements run on. `connection()` hands one out for a bounded wait and turns asyncpg's connection
    failures into StoreUnavailable and an exhausted pool into StoreBusy, so callers see store errors.

    `acknowledged=False` makes a pool whose commits do not wait for the WAL flush (synchronous_commit=off): for
    claims, settles, releases and nonces, whose loss in a crash of PostgreSQL only means a delivery is sent again
    (at-least-once already allows it). A later acknowledged commit flushes them with it."""

    def __init__(self, settings: PoolSettings, *, acknowledged: bool = True) -> None:
        self.settings = settings
        self.acknowledged = acknowledged
        self._pool: asyncpg.Pool | None = None

    async def open(self) -> None:
        s = self.settings
        server_settings = {"search_path": f'"{s.schema}"', "application_name": "hotline-interop-gateway"}
        if not self.acknowledged:
            server_settings["synchronous_commit"] = "off"
        try:
            self._pool = await asyncpg.create_pool(
                s.url, min_size=1, max_size=s.size, timeout=s.connect_timeout, command_timeout=s.command_timeout,
                server_settings=server_settings, max_inactive_connection_lifetime=300, reset=_rolled_back)
        except _UNAVAILABLE as err:
            raise StoreUnavailable(f"PostgreSQL at {redacted(s.url)} cannot be reached: {err}") from err

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except _CLOSE_FAILED:
                pool.terminate()

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("the PostgreSQL store is not open; await store.open() first")
        return self._pool

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        pool = self.pool
        try:
            conn = await pool.acquire(timeout=self.settings.acquire_timeout)
        except TimeoutError as err:
            raise StoreBusy(
                f"no PostgreSQL connection came free within {self.settings.acquire_timeout:g} s (pool of "
                f"{self.settings.size}, store.postgres_pool_size); the database is slow or the gateway overloaded"
            ) from err
        except _UNAVAILABLE as err:
            raise StoreUnavailable(f"PostgreSQL cannot be reached: {err}") from err
        try:
            yield conn
        except _UNAVAILABLE as err:
            raise StoreUnavailable(f"the PostgreSQL connection was lost: {err}") from err
        finally:
            with contextlib.suppress(*_UNAVAILABLE):
                await pool.release(conn)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self.connection() as conn:
            return list(await conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> asyncpg.Record | None:
        async with self.connection() as conn:
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        async with self.connection() as conn:
            return await conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: Any) -> str:
        async with self.connection() as conn:
            return await conn.execute(sql, *args)


class LaneListener:
    """A connection of its own that LISTENs on the schema's lane channel and calls `wake(lane)` for each
    notification. Lost (a restart), it connects again with backoff and then wakes every lane, since
    notifications sent meanwhile are gone."""

    def __init__(self, settings: PoolSettings, wake: Callable[[str | None], None]) -> None:
        self._settings = settings
        self._wake = wake
        self._channel = f"lanes_{settings.schema}"
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="postgres-lane-listener")

    async def close(self) -> None:
        self._closing = True
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._conn.close(), 5)
            self._conn = None

    def _notified(self, _conn: Conn, _pid: int, _channel: str, payload: object) -> None:
        self._wake(str(payload))

    def _terminated(self, _conn: object) -> None:
        self._lost.set()

    async def _run(self) -> None:
        delay = 0.1
        first = True
        while not self._closing:
            try:
                self._conn = await asyncpg.connect(self._settings.url, timeout=self._settings.connect_timeout,
                                                   server_settings={"application_name": LISTENER_NAME})
                self._conn.add_termination_listener(self._terminated)
                await self._conn.add_listener(self._channel, self._notified)
            except _UNAVAILABLE as err:
                if self._conn is not None:  # connected, then lost before it listened
                    self._conn.terminate()
                    self._conn = None
                if first:
                    log.warning("lane wake-ups unavailable; lanes poll until PostgreSQL answers",
                                extra={"error": str(err)})
                    first = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if not first:
                log.info("lane wake-ups listening again")
            first, delay = False, 0.1
            self._lost.clear()
            self._wake(None)  # whatever was notified while nobody listened
            await self._lost.wait()
            with contextlib.suppress(Exception):
                self._conn.terminate()
            self._conn = None


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, credentials = head.partition("://")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}" if ":" in credentials else url
