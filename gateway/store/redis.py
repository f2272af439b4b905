"""The shared store: Redis Streams with consumer groups for lanes, Lua for every multi-key step.

Layout and Cluster slots are described in gateway/store/redis_keys.py; the scripts in redis_lua.py.
Choice made for intake: the ticket, its raw payload, its idempotency record and its outbox entries
are written by ONE Lua script in the `{tickets}` slot (all ticket-level keys share that tag), so a
repeated or racing push can never create a second ticket nor lose an outbox entry. Moving an outbox
entry into its lane's `{lane:NAME}` slot is a second, idempotent step (the relay): done at once after
intake, and again by open() and reap_expired_leases() for anything a crash left behind. The relays of
intakes under way at the same moment go together (gateway/store/coalesce.py): their scripts pipelined in
one round trip, then one XDEL of the entries whose relay succeeded (never of one that failed). One slot for
all tickets caps ticket data at one Cluster node; a region's volume fits, and sharding that tag by
idempotency-key prefix is the way out if it ever does not.

Priority: each lane has four streams read in order: urgent (priority 0, 特急), urgent-retry, normal,
normal-retry; fresh work is never behind retries of its own priority. Due retries wait in a sorted
set and move to their retry stream (in due order) inside the claim script. A delivery's hash record
is the truth about its state and lease; stream entries and pending-entry lists only carry work, so
a stale entry is acknowledged and dropped when read.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, ResponseError
from ulid import ULID

from contracts.delivery import (
    AttemptReceipt,
    ClaimedDelivery,
    DeliveryKind,
    DeliveryReceipt,
    DeliveryState,
    OutboxEntry,
    check_destination,
)
from contracts.errors import FieldError
from contracts.ticket import Ticket
from gateway.store import redis_lua
from gateway.store.base import (
    COUNTS_RETENTION_S,
    AuditEntry,
    AuditQuery,
    ConcurrentUpdate,
    DeliveryFilter,
    IntakeResult,
    LeaseLost,
    QuarantinedPayload,
    Store,
    TicketQuery,
    UnknownTicket,
)
from gateway.store.coalesce import Coalescer
from gateway.store.phone_hash import KEY_ENV, PhoneKeyMismatch, hash_phone, key_fingerprint
from gateway.store.records import (
    TICKET_INDEXES,
    attempt_to_record,
    from_ms,
    minute_start_ms,
    now_ms,
    ticket_index_values,
    to_ms,
)
from gateway.store.redis_keys import GROUP, LaneKeys, RedisKeys

log = logging.getLogger(__name__)

_STATES = tuple(s.value for s in DeliveryState)
_WAITING = (DeliveryState.PENDING.value, DeliveryState.RETRYING.value, DeliveryState.IN_FLIGHT.value)
_PAGE = 500
_AUDIT_CLOCK_MARGIN_MS = 5 * 60_000


def _s(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _enqueue_order(outbox_id: bytes | str) -> int:
    """A delivery's place among its ticket's deliveries on a lane, from its outbox entry id (`ms-seq`, made in
    the same step as the ticket change that enqueued it): ms * 1000 + seq, exact in a Redis score (a double)."""
    ms, _, seq = _s(outbox_id).partition("-")
    return int(ms) * 1000 + min(int(seq or 0), 999)


def _pairs(flat: Sequence[Any]) -> dict[str, Any]:
    """A flat [field, value, field, value, …] reply as a dict keyed by text."""
    return {_s(flat[i]): flat[i + 1] for i in range(0, len(flat), 2)}


def _outbox_args(entries: list[OutboxEntry], idempotency_key: str) -> tuple[list[str], list[str | bytes | int]]:
    """Fresh delivery ids and the 8-per-entry arguments the {tickets} scripts expect."""
    ids: list[str] = []
    args: list[str | bytes | int] = [len(entries)]
    for entry in entries:
        check_destination(entry.destination)
        delivery_id = str(ULID())
        ids.append(delivery_id)
        args += [delivery_id, entry.destination, entry.kind.value, entry.idempotency_key or idempotency_key,
                 entry.body, entry.content_type, json.dumps(entry.headers, ensure_ascii=False), entry.priority]
    return ids, args


class RedisStore(Store):
    """Tickets and delivery lanes in Redis, shared by several gateway processes on several machines."""

    def __init__(self, url: str, phone_hash_key: bytes, *, namespace: str = "hig",
                 client: Redis | None = None) -> None:
        self.url = url
        self.keys = RedisKeys(namespace)
        self._phone_key = phone_hash_key
        self._client = client
        self._owns_client = client is None
        self._lanes_ready: set[str] = set()
        self._shas: dict[str, str] = {}
        self._relays: Coalescer[tuple[bytes | str, dict[str, Any]]] = Coalescer(self._relay_many)
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
        self._shas[script] = _s(await self.redis.script_load(script))
        return await self.redis.eval(script, len(keys), *keys, *args)

    # -- life cycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._client is None:
            self._client = Redis.from_url(self.url, decode_responses=False)
        await self.redis.ping()
        self.persistence = await self._check_persistence()
        if not self.persistence["persistent"]:
            log.warning(
                "REDIS DOES NOT PERSIST: a Redis restart loses every stored ticket and queued delivery; "
                "enable appendonly (AOF) or RDB snapshots before this gateway takes real traffic",
                extra={"redis_url": self._safe_url(), "persistence": self.persistence},
            )
        await self._check_phone_key()
        for lane in sorted(_s(n) for n in await cast(Awaitable[set[bytes]], self.redis.smembers(self.keys.lanes))):
            await self._ensure_lane(lane, force=True)
        await self._relay_backlog()

    async def _check_phone_key(self) -> None:
        """Every gateway on one Redis must hash phones with one key, or a search by phone misses what another
        stored: the first to open records the key's fingerprint, the others must match it or refuse to start."""
        mine = key_fingerprint(self._phone_key)
        if await self.redis.set(self.keys.phone_key_fingerprint, mine, nx=True):
            return
        recorded = await self.redis.get(self.keys.phone_key_fingerprint)
        if recorded is not None and _s(recorded) != mine:
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
            appendonly = {_s(k): _s(v) for k, v in (await self.redis.config_get("appendonly")).items()}
            save = {_s(k): _s(v) for k, v in (await self.redis.config_get("save")).items()}
            report["appendonly"] = appendonly.get("appendonly") == "yes"
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
            return {"store": "redis", "reachable": False, "persistent": False, "warnings": [str(err)]}
        self.persistence = await self._check_persistence()
        if not self.persistence["persistent"]:
            warnings.append("Redis keeps nothing on disk (no AOF, no RDB save points): a restart loses all data")
        backlog = await self.redis.xlen(self.keys.outbox)
        return {
            "store": "redis",
            "reachable": True,
            "persistent": self.persistence["persistent"],
            "persistence": self.persistence,
            "namespace": self.keys.namespace,
            "outbox_backlog": backlog,
            "warnings": warnings,
        }

    # -- lanes: groups and relay ------------------------------------------------------------------
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

    async def _relay_many(self, entries: list[tuple[bytes | str, dict[str, Any]]]) -> list[Exception | None]:
        """Move outbox entries into their lanes (idempotent), then drop those moved from the outbox; one round
        trip for all the moves and one for the drop. For each entry, the error that kept it from moving (it
        stays in the outbox for the backlog relay) or None."""
        calls: list[tuple[list[str], list[Any]]] = []
        for outbox_id, fields in entries:
            lane = _s(fields["lane"])
            keys = await self._ensure_lane(lane)
            priority = int(_s(fields["prio"]))
            stream = keys.urgent if priority <= 0 else keys.normal
            did = _s(fields["did"])
            calls.append((
                [keys.record(did), stream, keys.state(DeliveryState.PENDING.value)],
                [did, fields["ticket"], fields["kind"], fields["idem"], fields["body"], fields["ctype"],
                 fields["headers"], priority, fields["created"], lane, _enqueue_order(outbox_id), keys.order_prefix],
            ))
        errors = [r if isinstance(r, Exception) else None for r in await self._eval_many(redis_lua.RELAY, calls)]
        moved = [outbox_id for (outbox_id, _), error in zip(entries, errors, strict=True) if error is None]
        if moved:
            await self.redis.xdel(self.keys.outbox, *moved)
        return errors

    async def _eval_many(self, script: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """`script` once per call, pipelined in one round trip; each call's reply or its error, in order."""
        if len(calls) == 1:
            try:
                return [await self._eval(script, *calls[0])]
            except ResponseError as err:
                return [err]
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = _s(await self.redis.script_load(script))
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

    async def _relay_new(self, outbox_ids: Sequence[Any], ids: list[str], args: list[str | bytes | int],
                         ticket_id: str, now: int) -> None:
        entries: list[tuple[bytes | str, dict[str, Any]]] = []
        for n, (outbox_id, did) in enumerate(zip(outbox_ids, ids, strict=True)):
            b = 1 + n * 8
            entries.append((outbox_id, {
                "did": did, "lane": args[b + 1], "ticket": ticket_id, "kind": args[b + 2], "idem": args[b + 3],
                "body": args[b + 4], "ctype": args[b + 5], "headers": args[b + 6], "prio": str(args[b + 7]),
                "created": now,
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
            entries = [(outbox_id, {_s(k): v for k, v in raw.items()}) for outbox_id, raw in batch
                       if outbox_id is not None and raw is not None]
            if not entries:
                return moved
            failure = next((err for err in await self._relay_many(entries) if err is not None), None)
            if failure is not None:
                raise failure
            moved += len(entries)
            start = f"({_s(entries[-1][0])}"

    # -- tickets ----------------------------------------------------------------------------------
    def _index_args(self, ticket: Ticket) -> list[str | bytes | int]:
        values = ticket_index_values(ticket, self._phone_key)
        args: list[str | bytes | int] = [self.keys.index_prefix, len(TICKET_INDEXES)]
        for name in TICKET_INDEXES:
            args += [name, values[name] or ""]
        return args

    async def intake(self, ticket: Ticket, raw_body: bytes, raw_content_type: str,
                     outbox: list[OutboxEntry], *, ticket_json: str | None = None) -> IntakeResult:
        assert ticket.idempotency_key is not None  # the contract fills it in
        ids, entry_args = _outbox_args(outbox, ticket.idempotency_key)
        now = now_ms()
        k = self.keys
        reply = await self._eval(
            redis_lua.INTAKE,
            [k.idempotency(ticket.idempotency_key), k.ticket(ticket.ticket_id), k.raw(ticket.ticket_id),
             k.tickets_by_time, k.outbox, k.delivery_lanes, k.ticket_deliveries(ticket.ticket_id)],
            [ticket.ticket_id, ticket.model_dump_json() if ticket_json is None else ticket_json,
             ticket.lifecycle.last_sequence, now, raw_body,
             raw_content_type, *self._index_args(ticket), *entry_args],
        )
        if int(reply[0]) == 0:
            return IntakeResult(ticket_id=_s(reply[1]), created=False)
        await self._relay_new(reply[1:], ids, entry_args, ticket.ticket_id, now)
        return IntakeResult(ticket_id=ticket.ticket_id, created=True, delivery_ids=tuple(ids))

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        body = await cast(Awaitable[bytes | None], self.redis.hget(self.keys.ticket(ticket_id), "json"))
        return Ticket.model_validate_json(body) if body is not None else None

    async def find_ticket_id(self, *, idempotency_key: str | None = None,
                             national_registration_no: str | None = None) -> str | None:
        if idempotency_key is not None:
            found = await self.redis.get(self.keys.idempotency(idempotency_key))
            return _s(found) if found is not None else None
        if national_registration_no is None:
            raise ValueError("find_ticket_id needs idempotency_key or national_registration_no")
        members = await cast(Awaitable[set[bytes]], self.redis.smembers(
            self.keys.index("national_registration_no", national_registration_no)))
        if not members:
            return None
        ids = sorted(_s(m) for m in members)
        scores = await self.redis.zmscore(self.keys.tickets_by_time, ids)
        return min(zip(scores, ids, strict=True), key=lambda p: (p[0] or 0, p[1]))[1]

    async def save_ticket(self, ticket: Ticket, outbox: list[OutboxEntry], *,
                          expected_sequence: int | None = None) -> tuple[str, ...]:
        idem = ticket.idempotency_key
        assert idem is not None  # the contract fills it in
        ids, entry_args = _outbox_args(outbox, idem)
        now = now_ms()
        k = self.keys
        reply = await self._eval(
            redis_lua.SAVE_TICKET,
            [k.ticket(ticket.ticket_id), k.outbox, k.delivery_lanes, k.ticket_deliveries(ticket.ticket_id)],
            [ticket.ticket_id, ticket.model_dump_json(), ticket.lifecycle.last_sequence,
             "" if expected_sequence is None else expected_sequence, now, *self._index_args(ticket), *entry_args],
        )
        status = int(reply[0])
        if status == -1:
            raise UnknownTicket(ticket.ticket_id)
        if status == -2:
            raise ConcurrentUpdate(
                f"ticket {ticket.ticket_id} is at sequence {_s(reply[1])}, not {expected_sequence}"
            )
        await self._relay_new(reply[1:], ids, entry_args, ticket.ticket_id, now)
        return tuple(ids)

    async def search_tickets(self, query: TicketQuery) -> list[Ticket]:
        exact = {
            "adapter_id": query.adapter_id,
            "status": query.status,
            "national_registration_no": query.national_registration_no,
            "source_ticket_no": query.source_ticket_no,
            "respondent_uscc": query.respondent_uscc,
            "respondent_name": query.respondent_name,
            "complainant_phone_hash": (
                hash_phone(query.complainant_phone, self._phone_key) if query.complainant_phone else None
            ),
        }
        sets = [self.keys.index(name, value) for name, value in exact.items() if value is not None]
        low = to_ms(query.since) if query.since else None
        high = to_ms(query.until) if query.until else None
        if sets:
            members = await cast(Awaitable[set[bytes]], self.redis.sinter(sets))
            ids = [_s(m) for m in members]
            scores = await self.redis.zmscore(self.keys.tickets_by_time, ids) if ids else []
            hits = [(score, tid) for score, tid in zip(scores, ids, strict=True) if score is not None
                    and (low is None or score >= low) and (high is None or score < high)]
            hits.sort(reverse=True)
            chosen = [tid for _, tid in hits[:query.limit]]
        else:
            raw_ids = await self.redis.zrevrangebyscore(
                self.keys.tickets_by_time, "+inf" if high is None else f"({high}",
                "-inf" if low is None else low, start=0, num=query.limit,
            )
            chosen = [_s(t) for t in raw_ids]
        if not chosen:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tid in chosen:
                pipe.hget(self.keys.ticket(tid), "json")
            bodies = await pipe.execute()
        return [Ticket.model_validate_json(b) for b in bodies if b is not None]

    async def get_raw_payload(self, ticket_id: str) -> tuple[bytes, str] | None:
        body, ctype = await cast(Awaitable[list[bytes | None]],
                                 self.redis.hmget(self.keys.raw(ticket_id), ["body", "ctype"]))
        return (body, _s(ctype)) if body is not None else None

    # -- quarantine -------------------------------------------------------------------------------
    async def quarantine(self, adapter_id: str, body: bytes, content_type: str,
                         errors: list[FieldError]) -> str:
        quarantine_id = str(ULID())
        now = now_ms()
        errors_json = json.dumps([e.model_dump(mode="json") for e in errors], ensure_ascii=False)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.quarantined(quarantine_id), mapping={
                "id": quarantine_id, "adapter": adapter_id, "received": now, "ctype": content_type,
                "body": body, "errors": errors_json,
            })
            pipe.zadd(self.keys.quarantine_by_time, {quarantine_id: now})
            pipe.zadd(self.keys.quarantine_by_adapter(adapter_id), {quarantine_id: now})
            await pipe.execute()
        return quarantine_id

    @staticmethod
    def _quarantined(raw: dict[bytes, bytes]) -> QuarantinedPayload:
        f = {_s(k): v for k, v in raw.items()}
        resolved = f.get("resolved")
        return QuarantinedPayload(
            quarantine_id=_s(f["id"]), adapter_id=_s(f["adapter"]), received_at=from_ms(int(f["received"])),
            content_type=_s(f["ctype"]), body=bytes(f["body"]),
            errors=tuple(FieldError.model_validate(e) for e in json.loads(f["errors"])),
            resolved_ticket_id=_s(resolved) if resolved else None,
        )

    async def get_quarantined(self, quarantine_id: str) -> QuarantinedPayload | None:
        raw = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self.keys.quarantined(quarantine_id)))
        return self._quarantined(raw) if raw else None

    async def list_quarantined(self, adapter_id: str | None = None, limit: int = 100) -> list[QuarantinedPayload]:
        index = self.keys.quarantine_by_time if adapter_id is None else self.keys.quarantine_by_adapter(adapter_id)
        ids = await self.redis.zrevrange(index, 0, limit - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for qid in ids:
                pipe.hgetall(self.keys.quarantined(_s(qid)))
            rows = await pipe.execute()
        return [self._quarantined(r) for r in rows if r]

    async def resolve_quarantined(self, quarantine_id: str, ticket_id: str) -> None:
        key = self.keys.quarantined(quarantine_id)
        # HSET only if the record exists, in one step: no half-record for an unknown id.
        done = await self.redis.eval(
            "if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], 'resolved', ARGV[1])"
            " end return -1", 1, key, ticket_id,
        )
        if int(done) == -1:
            raise KeyError(f"no quarantined payload {quarantine_id}")

    # -- delivery lanes ---------------------------------------------------------------------------
    async def enqueue(self, ticket_id: str, idempotency_key: str, entries: list[OutboxEntry]) -> tuple[str, ...]:
        ids, entry_args = _outbox_args(entries, idempotency_key)
        now = now_ms()
        k = self.keys
        outbox_ids = await self._eval(
            redis_lua.ENQUEUE, [k.outbox, k.delivery_lanes, k.ticket_deliveries(ticket_id)],
            [ticket_id, now, *entry_args],
        )
        await self._relay_new(outbox_ids, ids, entry_args, ticket_id, now)
        return tuple(ids)

    async def claim(self, destination: str, worker_id: str, lease_seconds: float,
                    limit: int = 1) -> list[ClaimedDelivery]:
        keys = await self._ensure_lane(destination)
        lease_ms = max(1, int(lease_seconds * 1000))
        script_keys = [*keys.streams, keys.delayed, keys.leases, keys.autoclaim_cursors,
                       keys.state("pending"), keys.state("retrying"), keys.state("in_flight")]
        args = [GROUP, worker_id, now_ms(), lease_ms, limit, secrets.token_hex(12), keys.record_prefix,
                keys.order_prefix]
        try:
            reply = await self._eval(redis_lua.CLAIM, script_keys, args)
        except ResponseError as err:
            if "NOGROUP" not in str(err):
                raise
            # The script re-creates a lost group itself; this covers anything it did not foresee.
            log.warning("consumer group lost; re-creating it", extra={"lane": destination})
            await self._ensure_lane(destination, force=True)
            reply = await self._eval(redis_lua.CLAIM, script_keys, args)
        recreated, deleted = int(reply[0]), int(reply[1])
        if recreated:
            log.warning(
                "consumer group of a lane was missing (Redis restarted without persistence?); re-created it",
                extra={"lane": destination, "streams": recreated},
            )
            await self._ensure_lane(destination, force=True)  # the lane registry may be gone too
        if deleted:
            log.warning("pending entries had been deleted from a lane stream; the lease reaper returns them",
                        extra={"lane": destination, "entries": deleted})
        claimed = []
        for flat in reply[2:]:
            f = _pairs(flat)
            claimed.append(ClaimedDelivery(
                delivery_id=_s(f["id"]), ticket_id=_s(f["ticket"]), destination=destination,
                kind=DeliveryKind(_s(f["kind"])), idempotency_key=_s(f["idem"]), body=bytes(f["body"]),
                content_type=_s(f["ctype"]), headers=json.loads(f["headers"]), attempts=int(f["attempts"]),
                created_at=from_ms(int(f["created"])), lease_token=_s(f["lease_token"]),
                lease_until=from_ms(int(f["lease_until"])), budget_attempts=int(f.get("budget_attempts", 0)),
                budget_since=from_ms(int(f["budget_since"])) if "budget_since" in f else None,
            ))
        return claimed

    async def _settle(self, claim: ClaimedDelivery, attempt: AttemptReceipt, state: DeliveryState,
                      due_at: datetime | None) -> None:
        keys = self.keys.lane(claim.destination)
        record = attempt_to_record(claim, attempt)
        now = now_ms()
        done = await self._eval(
            redis_lua.SETTLE,
            [keys.record(claim.delivery_id), keys.attempts(claim.delivery_id), keys.leases, keys.delayed,
             keys.dead, keys.state("in_flight"), keys.state(state.value), *keys.streams],
            [GROUP, claim.lease_token, state.value, record.model_dump_json(), record.error_class or "",
             "" if record.status_code is None else record.status_code, now,
             to_ms(due_at) if due_at is not None else "", keys.record_prefix, keys.order_prefix],
        )
        if int(done) == 0:
            raise LeaseLost(f"delivery {claim.delivery_id}: the lease {claim.lease_token} is no longer held")

    async def settle_delivered(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None:
        await self._settle(claim, attempt, DeliveryState.DELIVERED, None)

    async def settle_retry(self, claim: ClaimedDelivery, attempt: AttemptReceipt, due_at: datetime) -> None:
        await self._settle(claim, attempt, DeliveryState.RETRYING, due_at)

    async def settle_dead(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None:
        await self._settle(claim, attempt, DeliveryState.DEAD, None)

    async def release(self, claim: ClaimedDelivery) -> bool:
        keys = self.keys.lane(claim.destination)
        done = await self._eval(
            redis_lua.RELEASE,
            [*keys.streams, keys.leases, keys.state("in_flight"), keys.state("pending"), keys.state("retrying")],
            [GROUP, keys.record(claim.delivery_id), claim.delivery_id, claim.lease_token],
        )
        return int(done) == 1

    async def _lanes(self) -> list[str]:
        return sorted(_s(n) for n in await cast(Awaitable[set[bytes]], self.redis.smembers(self.keys.lanes)))

    async def reap_expired_leases(self, now: datetime) -> int:
        await self._relay_backlog()
        at = to_ms(now)
        total = 0
        for lane in await self._lanes():
            keys = self.keys.lane(lane)
            while True:
                n = int(await self._eval(
                    redis_lua.REAP,
                    [*keys.streams, keys.leases, keys.state("in_flight"), keys.state("pending"),
                     keys.state("retrying")],
                    [GROUP, at, keys.record_prefix, _PAGE],
                ))
                total += n
                if n < _PAGE:
                    break
        return total

    @staticmethod
    def _receipt(destination: str, f: dict[str, Any]) -> DeliveryReceipt:
        state = DeliveryState(_s(f["state"]))
        waiting = state in (DeliveryState.PENDING, DeliveryState.RETRYING)
        delivered = f.get("delivered_at")
        error = f.get("last_error")
        code = f.get("last_status")
        return DeliveryReceipt(
            delivery_id=_s(f["id"]), ticket_id=_s(f["ticket"]), destination=destination,
            kind=DeliveryKind(_s(f["kind"])), state=state, idempotency_key=_s(f["idem"]),
            attempts=int(f["attempts"]), created_at=from_ms(int(f["created"])),
            next_attempt_at=from_ms(int(f["due"])) if waiting else None,
            delivered_at=from_ms(int(delivered)) if delivered else None,
            last_error_class=_s(error) if error else None,
            last_status_code=int(code) if code else None,
        )

    _RECEIPT_FIELDS = ("id", "ticket", "kind", "state", "idem", "attempts", "created", "due", "delivered_at",
                       "last_error", "last_status")

    async def _records(self, pairs: Sequence[tuple[str, str]]) -> list[DeliveryReceipt]:
        """Receipts for (lane, delivery id) pairs, in that order; missing records are skipped."""
        if not pairs:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for lane, did in pairs:
                pipe.hmget(self.keys.lane(lane).record(did), list(self._RECEIPT_FIELDS))
            rows = await pipe.execute()
        found = []
        for (lane, _), row in zip(pairs, rows, strict=True):
            if row[0] is None:
                continue
            found.append(self._receipt(lane, dict(zip(self._RECEIPT_FIELDS, row, strict=True))))
        return found

    async def get_delivery(self, delivery_id: str) -> DeliveryReceipt | None:
        lane = await cast(Awaitable[bytes | None], self.redis.hget(self.keys.delivery_lanes, delivery_id))
        if lane is None:
            return None
        found = await self._records([(_s(lane), delivery_id)])
        return found[0] if found else None

    async def list_deliveries(self, flt: DeliveryFilter) -> list[DeliveryReceipt]:
        low = to_ms(flt.since) if flt.since else None
        high = to_ms(flt.until) if flt.until else None

        def keep(r: DeliveryReceipt) -> bool:
            created = to_ms(r.created_at)
            return ((flt.state is None or r.state == flt.state)
                    and (flt.destination is None or r.destination == flt.destination)
                    and (flt.error_class is None or r.last_error_class == flt.error_class)
                    and (low is None or created >= low) and (high is None or created < high))

        if flt.ticket_id is not None:
            mapping = await cast(Awaitable[dict[bytes, bytes]],
                                 self.redis.hgetall(self.keys.ticket_deliveries(flt.ticket_id)))
            pairs = sorted(((_s(lane), _s(did)) for did, lane in mapping.items()), key=lambda p: p[1])
            found = [r for r in await self._records(pairs) if keep(r)]
        else:
            lanes = [flt.destination] if flt.destination is not None else await self._lanes()
            states = [flt.state.value] if flt.state is not None else list(_STATES)
            found = []
            for lane in lanes:
                for state in states:
                    found += await self._scan_state(lane, state, low, high, keep, flt.limit)
        found.sort(key=lambda r: (r.created_at, r.delivery_id))
        return found[:flt.limit]

    async def _scan_state(self, lane: str, state: str, low: int | None, high: int | None,
                          keep: Any, limit: int) -> list[DeliveryReceipt]:
        """Up to `limit` matching receipts from one lane's state index, oldest first, page by page."""
        index = self.keys.lane(lane).state(state)
        found: list[DeliveryReceipt] = []
        offset = 0
        while len(found) < limit:
            ids = await self.redis.zrangebyscore(
                index, "-inf" if low is None else low, "+inf" if high is None else f"({high}",
                start=offset, num=_PAGE,
            )
            if not ids:
                break
            offset += len(ids)
            found += [r for r in await self._records([(lane, _s(i)) for i in ids]) if keep(r)]
        return found[:limit]

    async def list_attempts(self, delivery_id: str) -> list[AttemptReceipt]:
        lane = await cast(Awaitable[bytes | None], self.redis.hget(self.keys.delivery_lanes, delivery_id))
        if lane is None:
            return []
        rows = await cast(Awaitable[list[bytes]],
                          self.redis.lrange(self.keys.lane(_s(lane)).attempts(delivery_id), 0, -1))
        return [AttemptReceipt.model_validate_json(r) for r in rows]

    async def replay(self, flt: DeliveryFilter | None = None, delivery_ids: list[str] | None = None,
                     dry_run: bool = False) -> list[str]:
        if delivery_ids is None and flt is None:
            raise ValueError("replay needs a filter or delivery ids; replaying every dead letter is a filter too")
        if delivery_ids is not None:
            lanes = await self.redis.hmget(self.keys.delivery_lanes, delivery_ids) if delivery_ids else []
            pairs = [(_s(lane), did) for did, lane in zip(delivery_ids, lanes, strict=True) if lane is not None]
            candidates = [r for r in await self._records(pairs) if r.state is DeliveryState.DEAD]
            candidates.sort(key=lambda r: (r.created_at, r.delivery_id))
        else:
            assert flt is not None
            candidates = await self.list_deliveries(DeliveryFilter(
                state=DeliveryState.DEAD, destination=flt.destination, error_class=flt.error_class,
                since=flt.since, until=flt.until, ticket_id=flt.ticket_id, limit=flt.limit,
            ))
        if dry_run:
            return [r.delivery_id for r in candidates]
        by_lane: dict[str, list[str]] = {}
        for r in candidates:
            by_lane.setdefault(r.destination, []).append(r.delivery_id)
        replayed: set[str] = set()
        now = now_ms()
        for lane, ids in by_lane.items():
            keys = await self._ensure_lane(lane)
            for start in range(0, len(ids), _PAGE):
                done = await self._eval(
                    redis_lua.REPLAY,
                    [keys.urgent, keys.normal, keys.dead, keys.state("dead"), keys.state("pending")],
                    [now, keys.record_prefix, keys.order_prefix, *ids[start:start + _PAGE]],
                )
                replayed.update(_s(d) for d in done)
        return [r.delivery_id for r in candidates if r.delivery_id in replayed]

    async def compact_delivered(self, created_before: datetime, limit: int = 500) -> int:
        cutoff = to_ms(created_before)
        compacted = 0
        for lane in sorted(_s(x) for x in await cast(Awaitable[set[bytes]], self.redis.smembers(self.keys.lanes))):
            keys = self.keys.lane(lane)
            while compacted < limit:
                ask = limit - compacted
                done, scanned = await self._eval(
                    redis_lua.COMPACT, [keys.state(DeliveryState.DELIVERED.value), keys.compacted_until],
                    [cutoff, ask, keys.record_prefix, keys.attempts_prefix, now_ms()])
                compacted += int(done)
                if int(scanned) < ask:  # this lane is done up to the cutoff
                    break
        return compacted

    async def lane_stats(self) -> dict[str, dict[str, float]]:
        now = now_ms()
        stats: dict[str, dict[str, float]] = {}
        for lane in await self._lanes():
            keys = self.keys.lane(lane)
            async with self.redis.pipeline(transaction=False) as pipe:
                for state in _STATES:
                    pipe.zcard(keys.state(state))
                for state in _WAITING:
                    pipe.zrange(keys.state(state), 0, 0, withscores=True)
                replies = await pipe.execute()
            lane_stats = {state: float(count) for state, count in zip(_STATES, replies, strict=False)}
            oldest = [row[0][1] for row in replies[len(_STATES):] if row]
            lane_stats["oldest_waiting_age_s"] = max(0.0, (now - min(oldest)) / 1000) if oldest else 0.0
            stats[lane] = lane_stats
        return stats

    # -- operations: audit log, per-minute counts, intake totals ---------------------------------------
    async def append_audit(self, entry: AuditEntry) -> str:
        entry_id = str(ULID())
        at = to_ms(entry.at)
        fields: dict[str, str | int] = {
            "id": entry_id, "at": at, "actor": entry.actor, "role": entry.role, "action": entry.action,
            "outcome": entry.outcome, "tickets": json.dumps(list(entry.ticket_ids)),
            "detail": json.dumps(dict(entry.detail), ensure_ascii=False, default=str),
        }
        stream_id = _s(await self.redis.xadd(self.keys.audit, fields))  # type: ignore[arg-type]
        if entry.ticket_ids:
            async with self.redis.pipeline(transaction=True) as pipe:
                for ticket_id in entry.ticket_ids:
                    pipe.zadd(self.keys.audit_by_ticket(ticket_id), {stream_id: at})
                await pipe.execute()
        return entry_id

    @staticmethod
    def _audit_entry(raw: dict[Any, Any]) -> AuditEntry:
        f = {_s(k): _s(v) for k, v in raw.items()}
        return AuditEntry(entry_id=f["id"], at=from_ms(int(f["at"])), actor=f["actor"], role=f["role"],
                          action=f["action"], outcome=f["outcome"], ticket_ids=tuple(json.loads(f["tickets"])),
                          detail=json.loads(f["detail"]))

    async def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        low = to_ms(query.since) if query.since else None
        high = to_ms(query.until) if query.until else None

        def keep(e: AuditEntry) -> bool:
            at = to_ms(e.at)
            return ((query.actor is None or e.actor == query.actor)
                    and (query.action is None or e.action == query.action)
                    and (query.ticket_id is None or query.ticket_id in e.ticket_ids)
                    and (low is None or at >= low) and (high is None or at < high))

        found: list[AuditEntry] = []
        if query.ticket_id is not None:
            stream_ids = cast(list[bytes],
                              await self.redis.zrevrange(self.keys.audit_by_ticket(query.ticket_id), 0, -1))
            async with self.redis.pipeline(transaction=False) as pipe:
                for stream_id in stream_ids:
                    pipe.xrange(self.keys.audit, stream_id, stream_id)
                replies = await pipe.execute()
            for reply in replies:
                found += [e for _, raw in reply if keep(e := self._audit_entry(raw))]
            return found[:query.limit]
        # Newest first, page by page from the stream's end. Stream ids carry Redis' clock, the entries their
        # own `at`: close, not equal, so `since` stops the scan only with a margin.
        stop_below = low - _AUDIT_CLOCK_MARGIN_MS if low is not None else None
        top = "+"
        while len(found) < query.limit:
            page = cast(list[tuple[bytes, dict[bytes, bytes]]],
                        await self.redis.xrevrange(self.keys.audit, top, "-", count=_PAGE))
            if not page:
                break
            for entry_sid, raw in page:
                if stop_below is not None and int(_s(entry_sid).split("-")[0]) < stop_below:
                    return found[:query.limit]
                entry = self._audit_entry(raw)
                if keep(entry):
                    found.append(entry)
            top = f"({_s(page[-1][0])}"
        return found[:query.limit]

    async def add_counts(self, counts: Mapping[datetime, Mapping[str, int]]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            queued = False
            for minute, by_name in counts.items():
                key = self.keys.minute_counts(minute_start_ms(minute))
                for name, n in by_name.items():
                    if n:
                        pipe.hincrby(key, name, int(n))
                        queued = True
                pipe.expire(key, COUNTS_RETENTION_S)
            if queued:
                await pipe.execute()

    async def read_counts(self, since: datetime, until: datetime | None = None) -> dict[datetime, dict[str, int]]:
        first = minute_start_ms(since)
        high = to_ms(until) if until is not None else now_ms() + 60_000
        minutes = list(range(first, high, 60_000))
        async with self.redis.pipeline(transaction=False) as pipe:
            for minute in minutes:
                pipe.hgetall(self.keys.minute_counts(minute))
            replies = await pipe.execute()
        return {from_ms(minute): {_s(k): int(v) for k, v in reply.items()}
                for minute, reply in zip(minutes, replies, strict=True) if reply}

    async def intake_stats(self, adapter_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        stats: dict[str, dict[str, int]] = {}
        for adapter_id in adapter_ids:
            tickets = await self.redis.scard(self.keys.index("adapter_id", adapter_id))
            ids = await self.redis.zrange(self.keys.quarantine_by_adapter(adapter_id), 0, -1)
            async with self.redis.pipeline(transaction=False) as pipe:
                for qid in ids:
                    pipe.hexists(self.keys.quarantined(_s(qid)), "resolved")
                resolved = await pipe.execute() if ids else []
            stats[adapter_id] = {"tickets": int(tickets), "quarantined": len(ids),
                                 "quarantine_open": sum(1 for r in resolved if not r)}
        return stats

    # -- pollers, nonces ---------------------------------------------------------------------------
    async def get_cursor(self, adapter_id: str) -> str | None:
        value = await self.redis.get(self.keys.cursor(adapter_id))
        return _s(value) if value is not None else None

    async def set_cursor(self, adapter_id: str, cursor: str) -> None:
        await self.redis.set(self.keys.cursor(adapter_id), cursor)

    async def try_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        got = await self._eval(redis_lua.TRY_LOCK, [self.keys.lock(name)], [owner, max(1, int(ttl_seconds * 1000))])
        return int(got) == 1

    async def release_lock(self, name: str, owner: str) -> None:
        await self._eval(redis_lua.RELEASE_LOCK, [self.keys.lock(name)], [owner])

    async def remember_nonce(self, scope: str, nonce: str, ttl_seconds: float) -> bool:
        first = await self.redis.set(self.keys.nonce(scope, nonce), b"1", nx=True,
                                     px=max(1, int(ttl_seconds * 1000)))
        return bool(first)
