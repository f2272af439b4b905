"""SIGKILL mid-flight, of the gateway (`python main.py -c <tmp>/gateway.yaml`) and of a delivery worker
(`python main.py worker`): after a restart nothing is lost — every ticket the partner got an acknowledgement
for is stored and registered at the national platform, once per idempotency key."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.faults.fault_support import (
    FAST_NATIONAL,
    NATIONAL_LANE,
    National,
    Partner,
    assert_each_registered_once,
    national_port,
    national_simulator,
    settled_store,
    wait_registered,
)
from tests.hardening.live_gateway import GatewayFiles, running, serve, wait_ready, worker, write_config
from tests.store.postgres_schemas import POSTGRES_URL, drop_schema_now, new_schema

pytestmark = pytest.mark.slow

TICKETS = 300
LATENCY_MS = 40  # the national platform's answer time: keeps deliveries in flight when the kill lands


def _until(predicate: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"{what} not reached within {within} s"
        time.sleep(0.02)


def _check_nothing_lost(files: GatewayFiles, national: National, partner: Partner) -> str:
    ticket_ids = {p.ticket_id for p in partner.acknowledged() if p.ticket_id}
    assert partner.failures == []
    assert len(ticket_ids) == TICKETS
    wait_registered(national, ticket_ids, within=60)
    stats = national.stats()
    registered = national.registered()
    assert_each_registered_once(settled_store(files, sorted(ticket_ids)), registered, stats, TICKETS)
    return (f"{TICKETS} acknowledged, {TICKETS} registered, {stats['duplicates']} duplicate submissions "
            f"absorbed by the idempotency key, {partner.refused_while_down} pushes retried while down")


@pytest.fixture(params=["sqlite", "postgres"])
def store_config(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The gateway's store: the embedded SQLite file, or a schema of its own on the machine's PostgreSQL."""
    if request.param == "sqlite":
        yield {"kind": "sqlite"}
        return
    schema = new_schema("test_sigkill")
    try:
        yield {"kind": "postgres", "postgres_url": POSTGRES_URL, "postgres_schema": schema}
    finally:
        drop_schema_now(schema)


def test_the_gateway_killed_mid_flight_loses_nothing(tmp_path: Path, store_config: dict[str, str]) -> None:
    port = national_port()
    files = write_config(tmp_path, ports={8316: port}, destinations={NATIONAL_LANE: FAST_NATIONAL},
                         store=store_config)
    with national_simulator(port, files.env["HIG_NATIONAL_TOKEN"]) as national:
        national.faults(latency_ms=LATENCY_MS)
        gateway = serve(files)
        partner = Partner(files, threads=6)
        with running(gateway):
            partner.start()
            try:
                partner.submit(TICKETS)
                _until(lambda: len(partner.acknowledged()) >= TICKETS // 2, 60, "half the pushes acknowledged")
                registered_at_kill = national.stats()["unique_idempotency_keys"]
                acknowledged_at_kill = len(partner.acknowledged())
                assert gateway.kill() == -signal.SIGKILL
                assert 0 < registered_at_kill < TICKETS  # deliveries were on their way, pushes still coming
                time.sleep(1.0)  # the partner's pushes meet a closed port meanwhile
                gateway.start()
                wait_ready(gateway)
                partner.wait_acknowledged(within=60)
            finally:
                partner.stop()
            summary = _check_nothing_lost(files, national, partner)
    print(f"\ngateway SIGKILL ({store_config['kind']}): killed with {acknowledged_at_kill} pushes acknowledged and "
          f"{registered_at_kill} registered; after the restart {summary}")


def test_a_worker_killed_mid_flight_loses_nothing(tmp_path: Path) -> None:
    port = national_port()
    files = write_config(tmp_path, ports={8316: port}, workers=False,
                         destinations={NATIONAL_LANE: FAST_NATIONAL})
    with national_simulator(port, files.env["HIG_NATIONAL_TOKEN"]) as national, running(serve(files)):
        national.faults(latency_ms=LATENCY_MS)
        partner = Partner(files, threads=6)
        partner.start()
        try:
            partner.submit(TICKETS)
            partner.wait_acknowledged(within=60)
        finally:
            partner.stop()
        assert national.stats()["unique_idempotency_keys"] == 0  # the API process delivers nothing itself
        first = worker(files, "worker-a")
        with running(first, ready=False):
            _until(lambda: national.stats()["unique_idempotency_keys"] >= TICKETS // 3, 60,
                   f"a third registered (worker log: {first.tail(1500)})")
            registered_at_kill = national.stats()["unique_idempotency_keys"]
            assert first.kill() == -signal.SIGKILL
        assert registered_at_kill < TICKETS
        with running(worker(files, "worker-b"), ready=False):
            summary = _check_nothing_lost(files, national, partner)
    print(f"\nworker SIGKILL: killed with {registered_at_kill} of {TICKETS} registered; after a new worker "
          f"started {summary}")
