"""What every role of the Redis store shares: the client, script calls, the lane registry and the outbox relay."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Sequence
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError

from contracts.delivery import DeliveryState, OutboxEntry, check_destination
from contracts.ulids import new_ulid
from gateway.store.coalesce import Coalescer
from gateway.store.errors import StoreError
from gateway.store.redis import lua
from gateway.store.redis.keys import GROUP, LaneKeys, RedisKeys

PAGE = 500  # ids per page when a scan or a script goes through an index in steps


def text(value: Any) -> str:
    """A reply as text: bytes decoded as UTF-8, None as ""."""
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def pairs(flat: Sequence[Any]) -> dict[str, Any]:
    """A flat [field, value, field, value, …] reply as a dict keyed by text."""
    return {text(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def enqueue_order(outbox_id: bytes | str) -> int:
    """A delivery's place among its ticket's deliveries on a lane, from its outbox entry id (`ms-seq`, made in
    the same step as the ticket change that enqueued it): ms * 1000 + seq, exact in a Redis score (a double)."""
    ms, _, seq = text(outbox_id).partition("-")
    return int(ms) * 1000 + min(int(seq or 0), 999)


def outbox_args(entries: list[OutboxEntry], idempotency_key: str) -> tuple[list[str], list[str | bytes | int]]:
    """Fresh delivery ids and the 10-per-entry arguments the {tickets} scripts expect."""
    ids: list[str] = []
    args: list[str | bytes | int] = [len(entries)]
    for entry in entries:
        check_destination(entry.destination)
        delivery_id = new_ulid()
        ids.append(delivery_id)
        reports = entry.reports
        args += [delivery_id, entry.destination, entry.kind.value, entry.idempotency_key or idempotency_key,
                 entry.body, entry.content_type, json.dumps(entry.headers, ensure_ascii=False), entry.priority,
                 reports.sequence if reports else "", reports.status if reports else ""]
    return ids, args


OutboxItem = tuple[bytes | str, dict[str, Any]]  # an outbox stream entry: its id and its fields


class RedisConnection:
    """The client of one Redis store and the steps its roles share; the roles are mixins over it."""

    def __init__(self, url: str, phone_hash_key: bytes, *, namespace: str = "hig",
                 client: Redis | None = None, connect_timeout_s: float = 2.0,
                 operation_timeout_s: float = 5.0, wait_aof: bool = False) -> None:
        self.url = url
        self.wait_aof = wait_aof  # intake waits until Redis has the write in its AOF on disk (WAITAOF 1 0)
        self.connect_timeout_s = connect_timeout_s
        self.operation_timeout_s = operation_timeout_s
        self.keys = RedisKeys(namespace)
        self._phone_key = phone_hash_key
        self._client = client
        self._owns_client = client is None
        self._lanes_ready: set[str] = set()
        self._shas: dict[str, str] = {}
        self._relays: Coalescer[OutboxItem] = Coalescer(self._relay_many)
        self.persistence: dict[str, object] = {}

    @property
    def redis(self) -> Redis:
        if self._client is None:
            raise RuntimeError("the Redis store is not open; await store.open() first")
        return self._client

    async def _eval(self, script: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        # EVALSHA first, EVAL (which also loads it) once per script after a Redis restart or flush.
        sha = self._shas.get(script)
        if sha is not None:
            try:
                return await self.redis.evalsha(sha, len(keys), *keys, *args)
            except NoScriptError:  # redis-py's class for NOSCRIPT; its message no longer starts with the code
                pass
        self._shas[script] = text(await self.redis.script_load(script))
        return await self.redis.eval(script, len(keys), *keys, *args)

    async def _eval_many(self, script: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """`script` once per call, pipelined in one round trip; each call's reply or its error, in order."""
        if len(calls) == 1:
            try:
                return [await self._eval(script, *calls[0])]
            except ResponseError as err:
                return [err]
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = text(await self.redis.script_load(script))
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(sha, len(keys), *keys, *args)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        for n, result in enumerate(results):
            if isinstance(result, NoScriptError):  # Redis restarted or flushed its scripts meanwhile
                try:
                    results[n] = await self._eval(script, *calls[n])
                except ResponseError as err:
                    results[n] = err
        return results

    async def _wait_aof(self) -> None:
        """Until this Redis has every write so far in its AOF on disk (WAITAOF 1 0), within the operation timeout;
        an intake not confirmed so is answered as one whose outcome is unknown (the partner retries safely)."""
        local, _ = await self.redis.waitaof(1, 0, int(self.operation_timeout_s * 1000))
        if int(local) < 1:
            raise StoreError(f"Redis did not confirm the write on disk within {self.operation_timeout_s:g} s (WAITAOF)")

    # -- lanes: registry and consumer groups ------------------------------------------------------
    async def _ensure_lane(self, lane: str, *, force: bool = False) -> LaneKeys:
        keys = self.keys.lane(lane)
        if lane in self._lanes_ready and not force:
            return keys
        for stream in keys.streams:
            try:
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as err:
                if "BUSYGROUP" not in str(err):
                    raise
        await self.redis.sadd(self.keys.lanes, lane)
        self._lanes_ready.add(lane)
        return keys

    async def _lanes(self) -> list[str]:
        return sorted(text(n) for n in await cast(Awaitable[set[bytes]], self.redis.smembers(self.keys.lanes)))

    # -- the relay: outbox entries of the {tickets} slot into their lanes ---------------------------
    async def _relay_many(self, entries: list[OutboxItem]) -> list[Exception | None]:
        """Move outbox entries into their lanes (idempotent), then drop those moved from the outbox; one round
        trip for all the moves and one for the drop. For each entry, the error that kept it from moving (it
        stays in the outbox for the backlog relay) or None."""
        calls: list[tuple[list[str], list[Any]]] = []
        for outbox_id, fields in entries:
            lane = text(fields["lane"])
            keys = await self._ensure_lane(lane)
            priority = int(text(fields["prio"]))
            stream = keys.urgent if priority <= 0 else keys.normal
            did = text(fields["did"])
            ticket_id = text(fields["ticket"])
            calls.append((
                [keys.record(did), stream, keys.state(DeliveryState.PENDING.value), keys.echo(ticket_id),
                 keys.behind, keys.echo_waiting(ticket_id)],
                [did, ticket_id, fields["kind"], fields["idem"], fields["body"], fields["ctype"],
                 fields["headers"], priority, fields["created"], lane, enqueue_order(outbox_id), keys.order_prefix,
                 fields.get("rseq", ""), fields.get("rstatus", "")],  # none in an outbox entry of an older gateway
            ))
        errors = [r if isinstance(r, Exception) else None for r in await self._eval_many(lua.RELAY, calls)]
        moved = [outbox_id for (outbox_id, _), error in zip(entries, errors, strict=True) if error is None]
        if moved:
            await self.redis.xdel(self.keys.outbox, *moved)
        return errors

    async def _relay_new(self, outbox_ids: Sequence[Any], ids: list[str], args: list[str | bytes | int],
                         ticket_id: str, now: int) -> None:
        entries: list[OutboxItem] = []
        for n, (outbox_id, did) in enumerate(zip(outbox_ids, ids, strict=True)):
            b = 1 + n * 10
            entries.append((outbox_id, {
                "did": did, "lane": args[b + 1], "ticket": ticket_id, "kind": args[b + 2], "idem": args[b + 3],
                "body": args[b + 4], "ctype": args[b + 5], "headers": args[b + 6], "prio": str(args[b + 7]),
                "created": now, "rseq": args[b + 8], "rstatus": args[b + 9],
            }))
        await self._relays.submit(entries)  # with the relays of other intakes under way at the same moment;
        # it raises only what kept one of these entries from moving

    async def _relay_backlog(self) -> int:
        """Relay whatever a crash left in the outbox; safe to run beside live intakes."""
        moved = 0
        start = "-"
        while True:
            batch = await self.redis.xrange(self.keys.outbox, start, "+", count=200)
            if not batch:
                return moved
            entries = [(outbox_id, {text(k): v for k, v in raw.items()}) for outbox_id, raw in batch
                       if outbox_id is not None and raw is not None]
            if not entries:
                return moved
            failure = next((err for err in await self._relay_many(entries) if err is not None), None)
            if failure is not None:
                raise failure
            moved += len(entries)
            start = f"({text(entries[-1][0])}"
