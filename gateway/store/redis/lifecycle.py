"""The Redis store's life cycle: open (persistence and phone-key checks, lanes, crash backlog), close, health."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import date

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from gateway.store.base import StoreLifecycle
from gateway.store.errors import PhoneKeyMismatch, StoreConfigError, StoreUnavailable
from gateway.store.phone_hash import KEY_ENV, key_fingerprint
from gateway.store.redis.connection import RedisConnection, text
from gateway.store.redis.packing import packed_by_hiredis

log = logging.getLogger("gateway.store.redis")  # one logger name for the whole Redis store


class RedisLifecycle(RedisConnection, StoreLifecycle):
    """Opening, closing and the health of the Redis store."""

    async def open(self) -> None:
        if self._client is None:
            # Never redis-py's defaults (no read timeout at all): a hung Redis must fail a push in bounded time.
            self._client = Redis.from_url(self.url, decode_responses=False,
                                          socket_connect_timeout=self.connect_timeout_s,
                                          socket_timeout=self.operation_timeout_s)
            pool = self._client.connection_pool  # no connection made yet: each one it makes packs with hiredis
            pool.connection_class = packed_by_hiredis(pool.connection_class)
        try:
            await self.redis.ping()
        except (RedisConnectionError, RedisTimeoutError) as err:
            raise StoreUnavailable(f"Redis at {self._safe_url()} cannot be reached: {err}") from err
        await self._check_eviction()
        self.persistence = await self._check_persistence()
        if not self.persistence["persistent"]:
            log.warning(
                "REDIS DOES NOT PERSIST: a Redis restart loses every stored ticket and queued delivery; "
                "enable appendonly (AOF) or RDB snapshots before this gateway takes real traffic",
                extra={"redis_url": self._safe_url(), "persistence": self.persistence},
            )
        loss = self._acknowledged_loss()
        if loss:
            log.warning(loss, extra={"redis_url": self._safe_url(), "persistence": self.persistence})
        if self.wait_aof:
            await self._check_wait_aof()
        await self._check_phone_key()
        for lane in await self._lanes():
            await self._ensure_lane(lane, force=True)
        await self._relay_backlog()
        await self._fill_due_index()
        await self._fill_source_numbers()

    async def _fill_due_index(self, batch: int = 1000) -> None:
        """Once per store: tickets stored before the due-day index existed enter it, as SQLite's migration 10 fills
        its column: those still RECEIVED or DISPATCHED, by the earliest due day of their intake deadlines."""
        if not await self.redis.set(self.keys.due_index_filled, "1", nx=True):
            return
        filled = 0
        async for rows in self._stored_tickets(["ix:status", "json"], batch):
            due: dict[str, int] = {}
            for tid, (status, body) in rows:
                if body is None or status not in (b"RECEIVED", b"DISPATCHED"):
                    continue
                days = [d["due_on"] for d in json.loads(body).get("routing", {}).get("deadlines", [])]
                if days:
                    due[tid] = date.fromisoformat(min(days)).toordinal()
            if due:
                filled += int(await self.redis.zadd(self.keys.tickets_by_due, due, nx=True) or 0)
        if filled:
            log.info("due-day index filled for tickets stored before it", extra={"tickets": filled})

    async def _stored_tickets(self, fields: list[str],
                              batch: int) -> AsyncIterator[list[tuple[str, list[bytes | None]]]]:
        """Every stored ticket in receipt order, a batch at a time: its id and the given fields of its hash."""
        start = 0
        while ids := [text(t) for t in await self.redis.zrange(self.keys.tickets_by_time, start, start + batch - 1)]:
            start += batch
            async with self.redis.pipeline(transaction=False) as pipe:
                for tid in ids:
                    pipe.hmget(self.keys.ticket(tid), fields)
                rows: list[list[bytes | None]] = await pipe.execute()
            yield list(zip(ids, rows, strict=True))

    async def _fill_source_numbers(self, batch: int = 1000) -> None:
        """Once per store: tickets stored before intake kept the partner's numbers hold theirs, as SQLite's
        migration 15 fills its table — in receipt order, so a number stored twice before goes to its first ticket.
        The mark is set after the fill (HSETNX makes a second, concurrent fill harmless)."""
        if await self.redis.exists(self.keys.source_numbers_filled):
            return
        filled = 0
        async for rows in self._stored_tickets(["json"], batch):
            async with self.redis.pipeline(transaction=False) as pipe:
                for tid, (body,) in rows:
                    if body is not None:
                        source = json.loads(body)["source"]
                        field = self.keys.source_number_field(source["source_system"], source["source_ticket_no"])
                        pipe.hsetnx(self.keys.source_numbers, field, tid)
                filled += sum(int(done) for done in await pipe.execute())
        await self.redis.set(self.keys.source_numbers_filled, "1")
        if filled:
            log.info("partner numbers kept for tickets stored before them", extra={"tickets": filled})

    def _acknowledged_loss(self) -> str | None:
        """What a power loss can take that the gateway already acknowledged, when Redis persists but not at once."""
        if not self.persistence.get("persistent") or self.wait_aof:
            return None
        if self.persistence.get("appendonly") and self.persistence.get("appendfsync") != "always":
            return (f"Redis writes its AOF to disk with appendfsync {self.persistence.get('appendfsync')}: on a power "
                    "loss or a crash of its machine, about the last second of acknowledged intakes can be lost; set "
                    "appendfsync always, or store.redis_wait_aof: true (Redis 7.2+: WAITAOF after each intake)")
        if not self.persistence.get("appendonly") and not self.persistence.get("aof_enabled"):
            return ("Redis persists only by RDB snapshots: everything acknowledged since the last snapshot is lost if "
                    "it stops; enable appendonly with appendfsync always")
        return None

    async def _check_wait_aof(self) -> None:
        """store.redis_wait_aof needs WAITAOF (Redis 7.2) and an AOF to wait on: refuse to start otherwise (asked as
        each intake asks, WAITAOF 1 0: without an AOF that is an error, where WAITAOF 0 0 answered as if all was well
        and every push would then have failed)."""
        try:
            await self.redis.waitaof(1, 0, 1)
        except ResponseError as err:
            raise StoreConfigError(f"store.redis_wait_aof is set, but {self._safe_url()} cannot WAITAOF ({err}): it "
                                   "needs Redis 7.2 or later with appendonly yes") from err

    async def _check_eviction(self) -> None:
        """A Redis that evicts keys to make room drops tickets and queued deliveries without a word: refuse to start
        on any maxmemory-policy but noeviction (with it, a full Redis refuses writes instead, loudly). Where
        CONFIG GET is not permitted (a renamed command, a managed Redis), the policy cannot be known: warn."""
        try:
            reply = await self.redis.config_get("maxmemory-policy")
            policy = {text(k): text(v) for k, v in reply.items()}.get("maxmemory-policy")
            unread = "CONFIG GET does not know the setting"
        except ResponseError as err:  # CONFIG renamed away, or not allowed by an ACL
            policy, unread = None, f"CONFIG GET refused: {err}"
        if policy is None:
            log.warning(f"cannot read Redis's maxmemory-policy ({unread}); make sure it is noeviction, or Redis may "
                        "evict tickets and deliveries when it is full", extra={"redis_url": self._safe_url()})
        elif policy != "noeviction":
            raise StoreConfigError(f"Redis at {self._safe_url()} has maxmemory-policy {policy}: it may evict tickets "
                                   "and deliveries when full; set maxmemory-policy noeviction in redis.conf (or CONFIG "
                                   "SET maxmemory-policy noeviction, then CONFIG REWRITE)")

    async def _check_phone_key(self) -> None:
        """Every gateway on one Redis must hash phones with one key, or a search by phone misses what another
        stored: the first to open records the key's fingerprint, the others must match it or refuse to start."""
        mine = key_fingerprint(self._phone_key)
        if await self.redis.set(self.keys.phone_key_fingerprint, mine, nx=True):
            return
        recorded = await self.redis.get(self.keys.phone_key_fingerprint)
        if recorded is not None and text(recorded) != mine:
            raise PhoneKeyMismatch(
                f"this gateway's phone hash key is not the one the tickets in {self._safe_url()} (namespace "
                f"{self.keys.namespace!r}) were indexed with: set {KEY_ENV} to the same value on every gateway "
                "sharing this Redis (the key of the first one is in its <data_dir>/phone-hash.key)")

    def _safe_url(self) -> str:
        # Never log a password that may be in the URL.
        _, sep, tail = self.url.rpartition("@")
        return f"redis://***@{tail}" if sep else self.url

    async def _check_persistence(self) -> dict[str, object]:
        report: dict[str, object] = {}
        try:
            appendonly = {text(k): text(v) for k, v in (await self.redis.config_get("appendonly")).items()}
            save = {text(k): text(v) for k, v in (await self.redis.config_get("save")).items()}
            fsync = {text(k): text(v) for k, v in (await self.redis.config_get("appendfsync")).items()}
            report["appendonly"] = appendonly.get("appendonly") == "yes"
            report["appendfsync"] = fsync.get("appendfsync")
            report["rdb_save"] = save.get("save", "")
        except ResponseError as err:  # CONFIG is often disabled on managed Redis
            report["config_error"] = str(err)
        info = await self.redis.info("persistence")
        report["aof_enabled"] = bool(int(info.get("aof_enabled", 0)))
        report["rdb_last_bgsave_status"] = info.get("rdb_last_bgsave_status")
        report["rdb_changes_since_last_save"] = info.get("rdb_changes_since_last_save")
        report["persistent"] = bool(report["aof_enabled"] or report.get("appendonly") or report.get("rdb_save"))
        return report

    async def close(self) -> None:
        await self._relays.drain()
        if self._client is not None and self._owns_client:
            await self._client.aclose()
        if self._owns_client:
            self._client = None

    async def health(self) -> dict[str, object]:
        warnings: list[str] = []
        try:
            await self.redis.ping()
        except Exception as err:  # health reports, it does not raise
            return {"store": "redis", "reachable": False, "writable": False, "persistent": False,
                    "warnings": [f"{type(err).__name__}: {err}"]}
        try:  # a Redis that answers PING may still refuse writes (MISCONF after a failed save, OOM, a replica)
            await self.redis.set(self.keys.health_probe, b"1", px=60_000)
        except Exception as err:
            return {"store": "redis", "reachable": True, "writable": False, "persistent": False,
                    "warnings": [f"Redis refuses writes: {type(err).__name__}: {err}"]}
        self.persistence = await self._check_persistence()
        if not self.persistence["persistent"]:
            warnings.append("Redis keeps nothing on disk (no AOF, no RDB save points): a restart loses all data")
        loss = self._acknowledged_loss()
        if loss:
            warnings.append(loss)
        backlog = await self.redis.xlen(self.keys.outbox)
        return {
            "store": "redis",
            "reachable": True,
            "writable": True,
            "persistent": self.persistence["persistent"],
            "persistence": self.persistence,
            "namespace": self.keys.namespace,
            "outbox_backlog": backlog,
            "warnings": warnings,
        }
