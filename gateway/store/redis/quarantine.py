"""The Redis store's quarantine: payloads that did not map, in the `{quarantine}` slot, one MULTI per write."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import cast

from ulid import ULID

from contracts.errors import FieldError
from gateway.store.base import QuarantinedPayload, QuarantineStore
from gateway.store.errors import UnknownQuarantine
from gateway.store.records import from_ms, now_ms
from gateway.store.redis.connection import RedisConnection, text

# HSET only if the record exists, in one step: no half-record for an unknown id.
_RESOLVE = ("if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HSET', KEYS[1], 'resolved', ARGV[1])"
            " end return -1")


class RedisQuarantine(RedisConnection, QuarantineStore):
    """Quarantined payloads by id, with indexes by time and by adapter."""

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
        f = {text(k): v for k, v in raw.items()}
        resolved = f.get("resolved")
        return QuarantinedPayload(
            quarantine_id=text(f["id"]), adapter_id=text(f["adapter"]), received_at=from_ms(int(f["received"])),
            content_type=text(f["ctype"]), body=bytes(f["body"]),
            errors=tuple(FieldError.model_validate(e) for e in json.loads(f["errors"])),
            resolved_ticket_id=text(resolved) if resolved else None,
        )

    async def get_quarantined(self, quarantine_id: str) -> QuarantinedPayload | None:
        raw = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self.keys.quarantined(quarantine_id)))
        return self._quarantined(raw) if raw else None

    async def list_quarantined(self, adapter_id: str | None = None, limit: int = 100) -> list[QuarantinedPayload]:
        index = self.keys.quarantine_by_time if adapter_id is None else self.keys.quarantine_by_adapter(adapter_id)
        ids = await self.redis.zrevrange(index, 0, limit - 1)
        async with self.redis.pipeline(transaction=False) as pipe:
            for qid in ids:
                pipe.hgetall(self.keys.quarantined(text(qid)))
            rows = await pipe.execute()
        return [self._quarantined(r) for r in rows if r]

    async def resolve_quarantined(self, quarantine_id: str, ticket_id: str) -> None:
        done = await self.redis.eval(_RESOLVE, 1, self.keys.quarantined(quarantine_id), ticket_id)
        if int(done) == -1:
            raise UnknownQuarantine(f"no quarantined payload {quarantine_id}")
