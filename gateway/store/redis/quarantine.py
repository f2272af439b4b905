"""The Redis store's quarantine: payloads that did not map, in the `{quarantine}` slot, one script per write."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import cast

from contracts.errors import FieldError
from contracts.ulids import new_ulid
from gateway.store.base import QuarantinedPayload, QuarantineStore
from gateway.store.errors import UnknownQuarantine
from gateway.store.records import errors_json, from_ms, now_ms, payload_digest
from gateway.store.redis import lua
from gateway.store.redis.connection import RedisConnection, text


class RedisQuarantine(RedisConnection, QuarantineStore):
    """Quarantined payloads by id, with indexes by time and by adapter, and a pointer from each adapter's open
    payload (by digest) to its record, so that the same payload again counts on that record."""

    async def quarantine(self, adapter_id: str, body: bytes, content_type: str,
                         errors: list[FieldError]) -> str:
        quarantine_id = new_ulid()
        digest = payload_digest(content_type, body)
        k = self.keys
        found = await self._eval(
            lua.QUARANTINE,
            [k.quarantine_open(adapter_id, digest), k.quarantined(quarantine_id), k.quarantine_by_time,
             k.quarantine_by_adapter(adapter_id)],
            [quarantine_id, now_ms(), adapter_id, content_type, body, errors_json(errors), digest,
             k.quarantine_prefix],
        )
        return text(found)

    @staticmethod
    def _quarantined(raw: dict[bytes, bytes]) -> QuarantinedPayload:
        f = {text(k): v for k, v in raw.items()}
        resolved = f.get("resolved")
        return QuarantinedPayload(
            quarantine_id=text(f["id"]), adapter_id=text(f["adapter"]), received_at=from_ms(int(f["received"])),
            content_type=text(f["ctype"]), body=bytes(f["body"]),
            errors=tuple(FieldError.model_validate(e) for e in json.loads(f["errors"])),
            resolved_ticket_id=text(resolved) if resolved else None,
            times_seen=int(f.get("seen", 1)),
            last_seen_at=from_ms(int(f.get("last_seen", f["received"]))),
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
        done = await self._eval(lua.RESOLVE_QUARANTINED, [self.keys.quarantined(quarantine_id)],
                                [ticket_id, self.keys.quarantine_open_prefix])
        if int(done) == -1:
            raise UnknownQuarantine(f"no quarantined payload {quarantine_id}")

    async def return_quarantined(self, quarantine_id: str, notes: list[FieldError]) -> None:
        done = await self._eval(lua.RETURN_QUARANTINED, [self.keys.quarantined(quarantine_id)], [errors_json(notes)])
        if int(done) == -1:
            raise UnknownQuarantine(f"no quarantined payload {quarantine_id}")
