"""A Redis restart mid-flight with persistence on: the gateway runs on its own redis-server (AOF, fsync on
every write, in a temporary folder; never the shared one on 6379), which is killed and started again while
tickets keep coming. Nothing acknowledged is lost, the lanes' consumer groups survive, delivery resumes."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from gateway.store.redis import GROUP, RedisKeys
from tests.faults.fault_support import (
    FAST_NATIONAL,
    NATIONAL_LANE,
    REDIS_SERVER,
    OwnRedis,
    Partner,
    delivered,
    inspect_store,
    national_port,
    national_simulator,
    wait_registered,
)
from tests.hardening.live_gateway import running, serve, write_config

pytestmark = pytest.mark.slow

RATE = 20.0  # tickets a second: more than the slow platform below takes, so a backlog waits at the kill
DOWN_SECONDS = 2.0


@pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed")
def test_a_redis_restart_mid_flight_loses_nothing_and_lanes_resume(tmp_path: Path) -> None:
    (tmp_path / "redis").mkdir()
    own = OwnRedis(tmp_path / "redis")
    own.start()
    try:
        port = national_port()
        files = write_config(tmp_path / "gateway", ports={8316: port}, destinations={NATIONAL_LANE: FAST_NATIONAL})
        files.env.update({"HIG_STORE__KIND": "redis", "HIG_STORE__REDIS_URL": own.url})
        lane = RedisKeys().lane(NATIONAL_LANE)
        with national_simulator(port, files.env["HIG_NATIONAL_TOKEN"]) as national, \
                running(serve(files)) as gateway:
            national.faults(latency_ms=500)  # 8 in flight: about 16 a second
            partner = Partner(files)
            partner.start()
            try:
                partner.steady(RATE, 4)
                groups_before = {s: own.client().xinfo_groups(s) for s in lane.streams if own.client().exists(s)}
                at_kill = (len(partner.acknowledged()), national.stats()["unique_idempotency_keys"])
                own.kill()
                partner.steady(RATE, DOWN_SECONDS)
                own.start()
                restarted = time.monotonic()
                partner.steady(RATE, 6)
                partner.wait_acknowledged(within=30)
            finally:
                partner.stop()
            assert partner.failures == []
            ticket_ids = {p.ticket_id for p in partner.acknowledged() if p.ticket_id}
            assert len(ticket_ids) == len(partner.pushes)
            wait_registered(national, ticket_ids, within=60)
            resumed = time.monotonic() - restarted
            stats = national.stats()
            registered = national.registered()
            groups_after = {s: own.client().xinfo_groups(s) for s in lane.streams if own.client().exists(s)}
            assert gateway.alive()
            log = gateway.log_text()
        view = inspect_store(files, sorted(ticket_ids), redis_url=own.url)
    finally:
        own.stop()
    print(f"\nredis restart: killed (SIGKILL) with {at_kill[0]} pushes acknowledged and {at_kill[1]} registered, "
          f"down {DOWN_SECONDS:g} s; {partner.refused_while_down} pushes refused meanwhile and retried; "
          f"{len(ticket_ids)} acknowledged, all registered {resumed:.1f} s after the restart; "
          f"{stats['duplicates']} duplicate submissions; consumer groups before {sorted(groups_before)}, "
          f"after {sorted(groups_after)}; 're-created' in the log: {'re-created' in log}")
    assert groups_before, "the national lane had no stream before the restart"
    for stream in groups_before:  # the AOF kept the consumer groups: nothing had to be re-created
        assert [g["name"].decode() for g in groups_after[stream]] == [GROUP]
    assert not view.missing
    for ticket_id, key in view.keys.items():
        assert registered.get(key) == ticket_id
    assert stats["unique_idempotency_keys"] == len(ticket_ids)
    assert view.dead == 0
    assert delivered(view) == len(ticket_ids)
