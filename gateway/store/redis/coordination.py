"""The Redis store's coordination of processes: poll cursors, named locks (Lua), nonces (SET NX with expiry)."""

from __future__ import annotations

from gateway.store.base import Coordination
from gateway.store.redis import lua
from gateway.store.redis.connection import RedisConnection, text


class RedisCoordination(RedisConnection, Coordination):
    """Single keys, no hash tag: each step is one command or one script over one key."""

    async def get_cursor(self, adapter_id: str) -> str | None:
        value = await self.redis.get(self.keys.cursor(adapter_id))
        return text(value) if value is not None else None

    async def set_cursor(self, adapter_id: str, cursor: str) -> None:
        await self.redis.set(self.keys.cursor(adapter_id), cursor)

    async def try_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        got = await self._eval(lua.TRY_LOCK, [self.keys.lock(name)], [owner, max(1, int(ttl_seconds * 1000))])
        return int(got) == 1

    async def release_lock(self, name: str, owner: str) -> None:
        await self._eval(lua.RELEASE_LOCK, [self.keys.lock(name)], [owner])

    async def lock_holder(self, name: str) -> str | None:
        value = await self.redis.get(self.keys.lock(name))
        return text(value) if value is not None else None

    async def take_over_lock(self, name: str, stale_owner: str, owner: str, ttl_seconds: float) -> bool:
        taken = await self._eval(lua.TAKE_OVER_LOCK, [self.keys.lock(name)],
                                 [stale_owner, owner, max(1, int(ttl_seconds * 1000))])
        return int(taken) == 1

    async def remember_nonce(self, scope: str, nonce: str, ttl_seconds: float) -> bool:
        first = await self.redis.set(self.keys.nonce(scope, nonce), b"1", nx=True,
                                     px=max(1, int(ttl_seconds * 1000)))
        return bool(first)
