"""PostgreSQL stopped and started again mid-flight (the machine's own cluster, `pg_ctlcluster 15 main`; it is left
running): while it is down pushes answer 503 and the partner retries them; afterwards the gateway reconnects by itself,
nothing acknowledged is lost and the lanes resume. The gateway works in a schema of its own, dropped afterwards."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.fault_support import (
    FAST_NATIONAL,
    NATIONAL_LANE,
    assert_each_registered_once,
    national_port,
    national_simulator,
    push_through_outage,
    settled_store,
)
from tests.hardening.live_gateway import running, serve, write_config
from tests.store.postgres_schemas import POSTGRES_URL, drop_schema_now, new_schema

pytestmark = pytest.mark.slow

PG_CTLCLUSTER = shutil.which("pg_ctlcluster")
CLUSTER = ("15", "main")
RATE = 20.0  # tickets a second: more than the slow platform takes, so a backlog waits at the stop
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
            outage = push_through_outage(files, national, gateway, stop=lambda: _cluster("stop", "-m", "fast"),
                                         start=lambda: _cluster("start"), rate=RATE, down_seconds=DOWN_SECONDS,
                                         acknowledged_within=60, registered_within=90)
            view = settled_store(files, sorted(outage.ticket_ids))
    finally:
        drop_schema_now(schema)
    print(f"\npostgres restart: stopped (fast) with {outage.acknowledged_at_stop} pushes acknowledged and "
          f"{outage.registered_at_stop} registered, down {DOWN_SECONDS:g} s; {outage.refused_while_down} pushes "
          f"answered 503 (or refused) meanwhile and retried; {len(outage.ticket_ids)} acknowledged, all registered "
          f"{outage.resumed:.1f} s after the start; {outage.stats['duplicates']} duplicate submissions; "
          f"'lane wake-ups listening again' in the log: {'lane wake-ups listening again' in outage.log}")
    assert outage.refused_while_down > 0, "no push met the stopped database"
    # answered, not hung: the partner saw a 503
    assert '"status": 503' in outage.log or "push intake failed" in outage.log
    assert_each_registered_once(view, outage.registered, outage.stats, len(outage.ticket_ids))
