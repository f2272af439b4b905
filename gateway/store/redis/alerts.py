"""The Redis store's alerts: records in the `{alerts}` slot, indexed by update and by firing, one MULTI per save."""

from __future__ import annotations

from typing import cast

from gateway.store.base import AlertLedger, AlertRecord
from gateway.store.records import alert_from_json, alert_to_json, to_ms
from gateway.store.redis.connection import RedisConnection, text


class RedisAlerts(RedisConnection, AlertLedger):
    """One JSON record per alert, with the ids of firing alerts kept apart for the monitor's every round."""

    async def save_alert(self, alert: AlertRecord) -> None:
        updated = to_ms(alert.updated_at)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.alerts, alert.alert_id, alert_to_json(alert))
            pipe.zadd(self.keys.alerts_by_update, {alert.alert_id: updated})
            if alert.state == "firing":
                pipe.zadd(self.keys.alerts_firing, {alert.alert_id: updated})
            else:
                pipe.zrem(self.keys.alerts_firing, alert.alert_id)
            await pipe.execute()

    async def list_alerts(self, *, firing_only: bool = False, limit: int = 100) -> list[AlertRecord]:
        index = self.keys.alerts_firing if firing_only else self.keys.alerts_by_update
        ids = cast(list[bytes], await self.redis.zrevrange(index, 0, max(limit, 1) - 1))
        if not ids:
            return []
        records = cast(list[bytes | None], await self.redis.hmget(self.keys.alerts, [text(i) for i in ids]))
        return [alert_from_json(text(r)) for r in records if r is not None]
