"""The Redis store's delivery lanes: claim, settle, release, reap, replay and compact as one script each per lane.

Each lane has four streams read in order (urgent, urgent-retry, normal, normal-retry); a delivery's hash record
is the truth about its state and lease, stream entries only carry work (gateway/store/redis/keys.py, lua.py)."""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

from redis.exceptions import ResponseError

from contracts.delivery import (
    AttemptReceipt,
    ClaimedDelivery,
    DeliveryKind,
    DeliveryReceipt,
    DeliveryState,
    OutboxEntry,
    ReportedStatus,
)
from gateway.store.base import DeliveryFilter, LaneStore, replayable
from gateway.store.errors import LeaseLost
from gateway.store.records import attempt_to_record, from_ms, now_ms, to_ms
from gateway.store.redis import lua
from gateway.store.redis.connection import PAGE, RedisConnection, outbox_args, pairs, text
from gateway.store.redis.keys import GROUP

log = logging.getLogger("gateway.store.redis")  # one logger name for the whole Redis store

_STATES = tuple(s.value for s in DeliveryState)
_REPLAYABLE = (DeliveryState.DEAD, DeliveryState.RETRYING)
_WAITING = (DeliveryState.PENDING.value, DeliveryState.RETRYING.value, DeliveryState.IN_FLIGHT.value)
_RECEIPT_FIELDS = ("id", "ticket", "kind", "state", "idem", "attempts", "created", "due", "delivered_at",
                   "last_error", "last_status")


def _receipt(destination: str, f: dict[str, Any]) -> DeliveryReceipt:
    state = DeliveryState(text(f["state"]))
    waiting = state in (DeliveryState.PENDING, DeliveryState.RETRYING)
    delivered = f.get("delivered_at")
    error = f.get("last_error")
    code = f.get("last_status")
    return DeliveryReceipt(
        delivery_id=text(f["id"]), ticket_id=text(f["ticket"]), destination=destination,
        kind=DeliveryKind(text(f["kind"])), state=state, idempotency_key=text(f["idem"]),
        attempts=int(f["attempts"]), created_at=from_ms(int(f["created"])),
        next_attempt_at=from_ms(int(f["due"])) if waiting else None,
        delivered_at=from_ms(int(delivered)) if delivered else None,
        last_error_class=text(error) if error else None,
        last_status_code=int(code) if code else None,
    )


class RedisLanes(RedisConnection, LaneStore):
    """Deliveries on their lanes, one `{lane:NAME}` slot per destination."""

    async def enqueue(self, ticket_id: str, idempotency_key: str, entries: list[OutboxEntry]) -> tuple[str, ...]:
        ids, entry_args = outbox_args(entries, idempotency_key)
        now = now_ms()
        k = self.keys
        outbox_ids = await self._eval(
            lua.ENQUEUE, [k.outbox, k.delivery_lanes, k.ticket_deliveries(ticket_id)],
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
            reply = await self._eval(lua.CLAIM, script_keys, args)
        except ResponseError as err:
            if "NOGROUP" not in str(err):
                raise
            # The script re-creates a lost group itself; this covers anything it did not foresee.
            log.warning("consumer group lost; re-creating it", extra={"lane": destination})
            await self._ensure_lane(destination, force=True)
            reply = await self._eval(lua.CLAIM, script_keys, args)
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
            f = pairs(flat)
            claimed.append(ClaimedDelivery(
                delivery_id=text(f["id"]), ticket_id=text(f["ticket"]), destination=destination,
                kind=DeliveryKind(text(f["kind"])), idempotency_key=text(f["idem"]), body=bytes(f["body"]),
                content_type=text(f["ctype"]), headers=json.loads(f["headers"]), attempts=int(f["attempts"]),
                created_at=from_ms(int(f["created"])), lease_token=text(f["lease_token"]),
                lease_until=from_ms(int(f["lease_until"])), budget_attempts=int(f.get("budget_attempts", 0)),
                budget_since=from_ms(int(f["budget_since"])) if "budget_since" in f else None,
                reports=ReportedStatus(int(f["rseq"]), text(f["rstatus"])) if f.get("rseq") else None,
            ))
        return claimed

    async def _settle(self, claim: ClaimedDelivery, attempt: AttemptReceipt, state: DeliveryState,
                      due_at: datetime | None) -> None:
        keys = self.keys.lane(claim.destination)
        record = attempt_to_record(claim, attempt)
        now = now_ms()
        done = await self._eval(
            lua.SETTLE,
            [keys.record(claim.delivery_id), keys.attempts(claim.delivery_id), keys.leases, keys.delayed,
             keys.dead, keys.state("in_flight"), keys.state(state.value), *keys.streams, keys.behind],
            [GROUP, claim.lease_token, state.value, record.model_dump_json(), record.error_class or "",
             "" if record.status_code is None else record.status_code, now,
             to_ms(due_at) if due_at is not None else "", keys.record_prefix, keys.order_prefix,
             keys.echo_prefix, keys.echo_waiting_prefix],
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
            lua.RELEASE,
            [*keys.streams, keys.leases, keys.state("in_flight"), keys.state("pending"), keys.state("retrying")],
            [GROUP, keys.record(claim.delivery_id), claim.delivery_id, claim.lease_token],
        )
        return int(done) == 1

    async def reap_expired_leases(self, now: datetime) -> int:
        await self._relay_backlog()
        at = to_ms(now)
        total = 0
        for lane in await self._lanes():
            keys = self.keys.lane(lane)
            while True:
                n = int(await self._eval(
                    lua.REAP,
                    [*keys.streams, keys.leases, keys.state("in_flight"), keys.state("pending"),
                     keys.state("retrying")],
                    [GROUP, at, keys.record_prefix, PAGE],
                ))
                total += n
                if n < PAGE:
                    break
        return total

    async def _records(self, lane_ids: Sequence[tuple[str, str]]) -> list[DeliveryReceipt]:
        """Receipts for (lane, delivery id) pairs, in that order; missing records are skipped."""
        if not lane_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for lane, did in lane_ids:
                pipe.hmget(self.keys.lane(lane).record(did), list(_RECEIPT_FIELDS))
            rows = await pipe.execute()
        found = []
        for (lane, _), row in zip(lane_ids, rows, strict=True):
            if row[0] is None:
                continue
            found.append(_receipt(lane, dict(zip(_RECEIPT_FIELDS, row, strict=True))))
        return found

    async def get_delivery(self, delivery_id: str) -> DeliveryReceipt | None:
        lane = await cast(Awaitable[bytes | None], self.redis.hget(self.keys.delivery_lanes, delivery_id))
        if lane is None:
            return None
        found = await self._records([(text(lane), delivery_id)])
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
            lane_ids = sorted(((text(lane), text(did)) for did, lane in mapping.items()), key=lambda p: p[1])
            found = [r for r in await self._records(lane_ids) if keep(r)]
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
                          keep: Callable[[DeliveryReceipt], bool], limit: int) -> list[DeliveryReceipt]:
        """Up to `limit` matching receipts from one lane's state index, oldest first, page by page."""
        index = self.keys.lane(lane).state(state)
        found: list[DeliveryReceipt] = []
        offset = 0
        while len(found) < limit:
            ids = await self.redis.zrangebyscore(
                index, "-inf" if low is None else low, "+inf" if high is None else f"({high}",
                start=offset, num=PAGE,
            )
            if not ids:
                break
            offset += len(ids)
            found += [r for r in await self._records([(lane, text(i)) for i in ids]) if keep(r)]
        return found[:limit]

    async def list_attempts(self, delivery_id: str) -> list[AttemptReceipt]:
        lane = await cast(Awaitable[bytes | None], self.redis.hget(self.keys.delivery_lanes, delivery_id))
        if lane is None:
            return []
        rows = await cast(Awaitable[list[bytes]],
                          self.redis.lrange(self.keys.lane(text(lane)).attempts(delivery_id), 0, -1))
        return [AttemptReceipt.model_validate_json(r) for r in rows]

    async def replay(self, flt: DeliveryFilter | None = None, delivery_ids: list[str] | None = None,
                     dry_run: bool = False) -> list[str]:
        if delivery_ids is None and flt is None:
            raise ValueError("replay needs a filter or delivery ids; replaying every dead letter is a filter too")
        if delivery_ids is not None:
            lanes = await self.redis.hmget(self.keys.delivery_lanes, delivery_ids) if delivery_ids else []
            lane_ids = [(text(lane), did) for did, lane in zip(delivery_ids, lanes, strict=True) if lane is not None]
            candidates = [r for r in await self._records(lane_ids) if r.state in _REPLAYABLE]
            candidates.sort(key=lambda r: (r.created_at, r.delivery_id))
        else:
            assert flt is not None
            candidates = await self.list_deliveries(DeliveryFilter(
                state=replayable(flt.state), destination=flt.destination, error_class=flt.error_class,
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
            for start in range(0, len(ids), PAGE):
                done = await self._eval(
                    lua.REPLAY,
                    [keys.urgent, keys.normal, keys.dead, keys.state("dead"), keys.state("pending"), keys.delayed],
                    [now, keys.record_prefix, keys.order_prefix, *ids[start:start + PAGE]],
                )
                replayed.update(text(d) for d in done)
        return [r.delivery_id for r in candidates if r.delivery_id in replayed]

    async def compact_delivered(self, created_before: datetime, limit: int = 500) -> int:
        cutoff = to_ms(created_before)
        compacted = 0
        for lane in await self._lanes():
            keys = self.keys.lane(lane)
            while compacted < limit:
                ask = limit - compacted
                done, scanned = await self._eval(
                    lua.COMPACT, [keys.state(DeliveryState.DELIVERED.value), keys.compacted_until],
                    [cutoff, ask, keys.record_prefix, keys.attempts_prefix, now_ms()])
                compacted += int(done)
                if int(scanned) < ask:  # this lane is done up to the cutoff
                    break
        return compacted

    async def watch_lanes(self, wake: Callable[[str | None], None]) -> None:
        """Lanes on Redis find work by their idle polling (a blocking stream read per lane would hold a connection
        each)."""

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
