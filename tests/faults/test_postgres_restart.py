"""PostgreSQL stopped and started again mid-flight (the machine's own cluster, `pg_ctlcluster 15 main`; it is left
running): while it is down pushes answer 503 and the partner retries them; afterwards the gateway reconnects by itself,
nothing acknowledged is lost and the lanes resume. The gateway works in a schema of its own, dropped afterwards."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.fault_support import (
    FAST_NATIONAL,
    NATIONAL_LANE,
    Partner,
    delivered,
    inspect_store,
    national_port,
    national_simulator,
    wait_registered,
)
from tests.hardening.live_gateway import running, serve, write_config
from tests.store.postgres_schemas import POSTGRES_URL, drop_schema_now, new_schema

pytestmark = pytest.mark.slow

PG_CTLCLUSTER = shutil.which("pg_ctlcluster")
CLUSTER = ("15", "main")
RATE = 20.0  # tickets a second: more than the slow platform below takes, so a backlog waits at the stop
DOWN_SECONDS = 3.0


def _cluster(action: str, *options: str) -> None:
    assert PG_CTLCLUSTER is not None
    subprocess.run([PG_CTLCLUSTER, *CLUSTER, action, *options], check=True, timeout=120, capture_output=True)


@pytest.fixture
def cluster_left_running() -> Iterator[None]:
    try:
        yield
    finally:  # whatever happened, PostgreSQL runs again afterwards
        status = subprocess.run([PG_CTLCLUSTER or "pg_ctlcluster", *CLUSTER, "status"], capture_output=True,
                                check=False)
        if status.returncode != 0:
            _cluster("start")


@pytest.mark.skipif(PG_CTLCLUSTER is None, reason="Debian's pg_ctlcluster is not installed")
def test_a_postgres_restart_mid_flight_answers_503_loses_nothing_and_the_gateway_reconnects(
        tmp_path: Path, cluster_left_running: None) -> None:
    schema = new_schema("test_pgrestart")
    try:
        port = national_port()
        files = write_config(tmp_path, ports={8316: port}, destinations={NATIONAL_LANE: FAST_NATIONAL},
                             store={"kind": "postgres", "postgres_url": POSTGRES_URL, "postgres_schema": schema,
                                    "postgres_pool_timeout_seconds": 2})
        with national_simulator(port, files.env["HIG_NATIONAL_TOKEN"]) as national, \
                running(serve(files)) as gateway:
            national.faults(latency_ms=500)  # 8 in flight: about 16 a second
            partner = Partner(files)
            partner.start()
            try:
                partner.steady(RATE, 4)
                at_stop = (len(partner.acknowledged()), national.stats()["unique_idempotency_keys"])
                _cluster("stop", "-m", "fast")  # connections terminated, new ones refused
                partner.steady(RATE, DOWN_SECONDS)
                refused_while_down = partner.refused_while_down
                _cluster("start")
                restarted = time.monotonic()
                partner.steady(RATE, 6)
                partner.wait_acknowledged(within=60)
            finally:
                partner.stop()
            assert partner.failures == []
            ticket_ids = {p.ticket_id for p in partner.acknowledged() if p.ticket_id}
            assert len(ticket_ids) == len(partner.pushes)
            wait_registered(national, ticket_ids, within=90)
            resumed = time.monotonic() - restarted
            stats = national.stats()
            registered = national.registered()
            assert gateway.alive()
            log = gateway.log_text()
        view = inspect_store(files, sorted(ticket_ids))
    finally:
        drop_schema_now(schema)
    print(f"\npostgres restart: stopped with {at_stop[0]} pushes acknowledged and {at_stop[1]} registered, down "
          f"{DOWN_SECONDS:g} s; {refused_while_down} pushes answered 503 (or refused) meanwhile and retried; "
          f"{len(ticket_ids)} acknowledged, all registered {resumed:.1f} s after the start; "
          f"{stats['duplicates']} duplicate submissions; 'lane wake-ups listening again' in the log: "
          f"{'lane wake-ups listening again' in log}")
    assert refused_while_down > 0, "no push met the stopped database"
    assert '"status": 503' in log or "push intake failed" in log  # answered, not hung: the partner saw a 503
    assert not view.missing
    for ticket_id, key in view.keys.items():
        assert registered.get(key) == ticket_id
    assert stats["unique_idempotency_keys"] == len(ticket_ids)
    assert view.dead == 0
    assert delivered(view) == len(ticket_ids)
