"""RedisStore: the shared store, composed of one mixin per role over one connection (design: docs/redis-store.md)."""

from __future__ import annotations

from gateway.store.base import Store
from gateway.store.redis.alerts import RedisAlerts
from gateway.store.redis.coordination import RedisCoordination
from gateway.store.redis.echo import RedisEcho
from gateway.store.redis.lanes import RedisLanes
from gateway.store.redis.lifecycle import RedisLifecycle
from gateway.store.redis.ops import RedisOpsLedger
from gateway.store.redis.quarantine import RedisQuarantine
from gateway.store.redis.tickets import RedisTickets


class RedisStore(RedisLifecycle, RedisTickets, RedisQuarantine, RedisLanes, RedisEcho, RedisOpsLedger, RedisAlerts,
                 RedisCoordination, Store):
    """Tickets and delivery lanes in Redis, shared by several gateway processes on several machines."""
