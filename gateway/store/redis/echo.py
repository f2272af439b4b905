"""The Redis store's sender's echo: read from the callback lanes' slots, where RELAY and SETTLE keep it."""

from __future__ import annotations

import heapq
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, cast

from gateway.store.base import EchoStore, PartnerEcho
from gateway.store.records import from_ms, to_ms
from gateway.store.redis.connection import RedisConnection, text


def _echo(ticket_id: str, lane: str, raw: dict[bytes, bytes], waiting: str | None) -> PartnerEcho | None:
    f = {text(k): text(v) for k, v in raw.items()}
    if "latest_seq" not in f:
        return None
    behind = f.get("behind_since")
    return PartnerEcho(
        ticket_id=ticket_id, destination=lane, latest_sequence=int(f["latest_seq"]),
        latest_status=f["latest_status"], latest_at=from_ms(int(f["latest_at"])),
        heard_sequence=int(f["heard_seq"]) if "heard_seq" in f else None,
        heard_status=f.get("heard_status"),
        heard_at=from_ms(int(f["heard_at"])) if "heard_at" in f else None,
        behind_since=from_ms(int(behind)) if behind else None,
        waiting_delivery_id=waiting if behind else None,
    )


class RedisEcho(RedisConnection, EchoStore):
    """Each callback lane keeps its tickets' echoes, the callbacks not yet heard, and a set of the tickets behind."""

    async def _read(self, pairs: list[tuple[str, str]]) -> list[PartnerEcho | None]:
        """The echoes of (lane, ticket id) pairs, in order; None where the lane holds none for the ticket."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for lane, ticket_id in pairs:
                keys = self.keys.lane(lane)
                pipe.hgetall(keys.echo(ticket_id))
                pipe.zrange(keys.echo_waiting(ticket_id), 0, 0)
            replies: list[Any] = await pipe.execute()
        found = []
        for n, (lane, ticket_id) in enumerate(pairs):
            raw, waiting = replies[2 * n], replies[2 * n + 1]
            found.append(_echo(ticket_id, lane, raw, text(waiting[0]) if waiting else None) if raw else None)
        return found

    async def get_echo(self, ticket_id: str) -> PartnerEcho | None:
        # The ticket's deliveries name its lanes; its callback lane is the one holding its echo.
        lanes = sorted({text(lane) for lane in (await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(
            self.keys.ticket_deliveries(ticket_id)))).values()})
        if not lanes:
            return None
        return next((e for e in await self._read([(lane, ticket_id) for lane in lanes]) if e is not None), None)

    async def list_behind(self, behind_before: datetime, limit: int = 100) -> list[PartnerEcho]:
        cutoff = to_ms(behind_before)
        per_lane: list[list[tuple[float, str, str]]] = []
        for lane in await self._lanes():
            rows = cast(list[tuple[bytes, float]], await self.redis.zrangebyscore(
                self.keys.lane(lane).behind, "-inf", cutoff, start=0, num=limit, withscores=True))
            per_lane.append([(float(score), text(ticket_id), lane) for ticket_id, score in rows])
        chosen = list(heapq.merge(*per_lane))[:limit]
        echoes = await self._read([(lane, ticket_id) for _, ticket_id, lane in chosen])
        return [e for e in echoes if e is not None]

    async def count_behind(self, behind_before: datetime) -> int:
        cutoff = to_ms(behind_before)
        lanes = await self._lanes()
        if not lanes:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for lane in lanes:
                pipe.zcount(self.keys.lane(lane).behind, "-inf", cutoff)
            counts: list[int] = await pipe.execute()
        return sum(int(c) for c in counts)
