"""The Redis store's ops ledger: the audit log (a stream in the `{audit}` slot), per-minute counters, intake totals."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from contracts.ulids import new_ulid
from gateway.store.base import COUNTS_RETENTION_S, RETURNED_NOTE, AuditEntry, AuditQuery, OpsLedger
from gateway.store.records import from_ms, minute_start_ms, now_ms, to_ms
from gateway.store.redis.connection import PAGE, RedisConnection, text

# Stream ids carry Redis' clock, audit entries their own `at`: close, not equal.
_AUDIT_CLOCK_MARGIN_MS = 5 * 60_000


def _audit_entry(raw: dict[Any, Any]) -> AuditEntry:
    f = {text(k): text(v) for k, v in raw.items()}
    return AuditEntry(entry_id=f["id"], at=from_ms(int(f["at"])), actor=f["actor"], role=f["role"],
                      action=f["action"], outcome=f["outcome"], ticket_ids=tuple(json.loads(f["tickets"])),
                      detail=json.loads(f["detail"]))


class RedisOpsLedger(RedisConnection, OpsLedger):
    """Audit entries (never trimmed) with a per-ticket index, counters per minute (expiring), intake totals."""

    async def append_audit(self, entry: AuditEntry) -> str:
        entry_id = new_ulid()
        at = to_ms(entry.at)
        fields: dict[str, str | int] = {
            "id": entry_id, "at": at, "actor": entry.actor, "role": entry.role, "action": entry.action,
            "outcome": entry.outcome, "tickets": json.dumps(list(entry.ticket_ids)),
            "detail": json.dumps(dict(entry.detail), ensure_ascii=False, default=str),
        }
        stream_id = text(await self.redis.xadd(self.keys.audit, fields))  # type: ignore[arg-type]
        if entry.ticket_ids:
            async with self.redis.pipeline(transaction=True) as pipe:
                for ticket_id in entry.ticket_ids:
                    pipe.zadd(self.keys.audit_by_ticket(ticket_id), {stream_id: at})
                await pipe.execute()
        return entry_id

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
                found += [e for _, raw in reply if keep(e := _audit_entry(raw))]
            return found[:query.limit]
        # Newest first, page by page from the stream's end; `since` stops the scan only with the clock margin.
        stop_below = low - _AUDIT_CLOCK_MARGIN_MS if low is not None else None
        top = "+"
        while len(found) < query.limit:
            page = cast(list[tuple[bytes, dict[bytes, bytes]]],
                        await self.redis.xrevrange(self.keys.audit, top, "-", count=PAGE))
            if not page:
                break
            for entry_sid, raw in page:
                if stop_below is not None and int(text(entry_sid).split("-")[0]) < stop_below:
                    return found[:query.limit]
                entry = _audit_entry(raw)
                if keep(entry):
                    found.append(entry)
            top = f"({text(page[-1][0])}"
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
        return {from_ms(minute): {text(k): int(v) for k, v in reply.items()}
                for minute, reply in zip(minutes, replies, strict=True) if reply}

    async def intake_stats(self, adapter_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        stats: dict[str, dict[str, int]] = {}
        for adapter_id in adapter_ids:
            tickets = await self.redis.scard(self.keys.index("adapter_id", adapter_id))
            ids = await self.redis.zrange(self.keys.quarantine_by_adapter(adapter_id), 0, -1)
            async with self.redis.pipeline(transaction=False) as pipe:
                for qid in ids:
                    pipe.hmget(self.keys.quarantined(text(qid)), ["resolved", "errors"])
                records = await pipe.execute() if ids else []
            returned = [_returned(errors) for _, errors in records]
            stats[adapter_id] = {"tickets": int(tickets), "quarantined": len(ids),
                                 "quarantine_open": sum(1 for (resolved, _), r in zip(records, returned, strict=True)
                                                        if not resolved and not r),
                                 "returned": sum(returned)}
        return stats


def _returned(errors: bytes | None) -> bool:
    """A quarantine record sent back to its partner as a 退单: its first note's rule is `returned:<reason code>`."""
    notes = json.loads(errors) if errors else []
    return bool(notes) and str(notes[0].get("rule", "")).startswith(RETURNED_NOTE)
