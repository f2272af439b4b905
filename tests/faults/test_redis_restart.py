"""A Redis restart mid-flight with persistence on: the gateway runs on its own redis-server (AOF, fsync on
every write, in a temporary folder; never the shared one on 6379), which is killed and started again while
tickets keep coming. Nothing acknowledged is lost, the lanes' consumer groups survive, delivery resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.store.redis import GROUP, RedisKeys
from tests.faults.fault_support import (
    FAST_NATIONAL,
    NATIONAL_LANE,
    REDIS_SERVER,
    OwnRedis,
    assert_each_registered_once,
    national_port,
    national_simulator,
    push_through_outage,
    settled_store,
)
from tests.hardening.live_gateway import running, serve, write_config

pytestmark = pytest.mark.slow

RATE = 20.0  # tickets a second: more than the slow platform takes, so a backlog waits at the kill
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
        groups_before: dict[bytes, Any] = {}

        def kill() -> None:
            groups_before.update({s: own.client().xinfo_groups(s) for s in lane.streams if own.client().exists(s)})
            own.kill()

        with national_simulator(port, files.env["HIG_NATIONAL_TOKEN"]) as national, \
                running(serve(files)) as gateway:
            outage = push_through_outage(files, national, gateway, stop=kill, start=own.start, rate=RATE,
                                         down_seconds=DOWN_SECONDS, acknowledged_within=30, registered_within=60)
            groups_after = {s: own.client().xinfo_groups(s) for s in lane.streams if own.client().exists(s)}
            view = settled_store(files, sorted(outage.ticket_ids), redis_url=own.url)
    finally:
        own.stop()
    print(f"\nredis restart: killed (SIGKILL) with {outage.acknowledged_at_stop} pushes acknowledged and "
          f"{outage.registered_at_stop} registered, down {DOWN_SECONDS:g} s; {outage.refused_while_down} pushes "
          f"refused meanwhile and retried; {len(outage.ticket_ids)} acknowledged, all registered "
          f"{outage.resumed:.1f} s after the restart; {outage.stats['duplicates']} duplicate submissions; consumer "
          f"groups before {sorted(groups_before)}, after {sorted(groups_after)}; 're-created' in the log: "
          f"{'re-created' in outage.log}")
    assert groups_before, "the national lane had no stream before the restart"
    for stream in groups_before:  # the AOF kept the consumer groups: nothing had to be re-created
        assert [g["name"].decode() for g in groups_after[stream]] == [GROUP]
    assert_each_registered_once(view, outage.registered, outage.stats, len(outage.ticket_ids))
