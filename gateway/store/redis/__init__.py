"""The shared store: Redis Streams with consumer groups for lanes, Lua for every multi-key step."""

from __future__ import annotations

from gateway.store.redis.keys import GROUP, LaneKeys, RedisKeys, key_slot
from gateway.store.redis.store import RedisStore

__all__ = ["GROUP", "LaneKeys", "RedisKeys", "RedisStore", "key_slot"]
