"""Prometheus metrics: intake, mapping failures, delivery attempts, latency, lanes, circuits, deadlines, per app."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path

from gateway.app import create_app
from gateway.store.base import DeliveryFilter
from tests.ops.ops_support import (
    OpsGateway,
    base_settings,
    build_runtime,
    city_complaint,
    delivery_file_for,
    make_store,
    receiver,
    running_gateway,
)


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one series in a Prometheus exposition, or None when it is absent."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        match = re.match(r"^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(3) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(4))
    return None


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 15.0) -> None:
    async with asyncio.timeout(within):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def test_metrics_expose_intake_mapping_failures_and_gauges(sqlite_gw: OpsGateway) -> None:
    await sqlite_gw.push(city_complaint("KL-MET-1"))  # overdue: received 2024-03-15, still RECEIVED
    await sqlite_gw.push(city_complaint("KL-MET-2", contactIdCard="522601200109098874"))
    await sqlite_gw.push(city_complaint("KL-MET-3", appealTypeCode="05"))  # 求助: returned to 12345
    await sqlite_gw.kill_delivery()

    response = await sqlite_gw.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    city = "city-12345-rest"
    assert sample(text, "hig_intake_total", adapter=city, outcome="created") == 1
    assert sample(text, "hig_intake_total", adapter=city, outcome="quarantined") == 1
    assert sample(text, "hig_intake_total", adapter=city, outcome="returned") == 1
    assert sample(text, "hig_mapping_failures_total", adapter=city, rule="invalid_resident_id") == 1
    assert sample(text, "hig_mapping_failures_total", adapter=city, rule="returned:1") == 1
    assert sample(text, "hig_intake_duration_seconds_count", adapter=city) == 3
    assert sample(text, "hig_lane_depth", destination="national", state="dead") == 1
    assert sample(text, "hig_lane_oldest_waiting_seconds", destination="national") == 0
    assert sample(text, "hig_tickets_deadline_risk", risk="overdue") == 1
    assert sample(text, "hig_quarantine_open", adapter=city) == 1  # the 退单 is closed: the partner heard it


async def test_delivery_attempts_latency_and_circuit_state_come_from_the_running_engine(tmp_path: Path) -> None:
    with receiver() as peer:
        peer.accept = False
        delivery = delivery_file_for(tmp_path, peer.url)
        async with running_gateway(tmp_path, workers=True, delivery_file=delivery) as gw:
            outcome = await gw.push(city_complaint("KL-MET-4"))

            async def dead() -> bool:
                receipts = await gw.store.list_deliveries(DeliveryFilter(ticket_id=outcome.ticket_id))
                return bool(receipts) and receipts[0].state.value == "dead"

            await eventually(dead)
            text = (await gw.client.get("/metrics")).text
            assert sample(text, "hig_delivery_attempts_total", destination="national", outcome="dead") == 1
            assert sample(text, "hig_delivery_attempt_duration_seconds_count", destination="national") == 1
            assert sample(text, "hig_circuit_state", destination="national", state="closed") == 1
            assert sample(text, "hig_circuit_state", destination="national", state="open") == 0

            peer.accept = True
            replay = await gw.post("/api/v1/deliveries/replay", "operator", {"filter": {"destination": "national"}})
            assert replay.json()["count"] == 1

            async def delivered() -> bool:
                text = (await gw.client.get("/metrics")).text
                return sample(text, "hig_delivery_attempts_total", destination="national", outcome="delivered") == 1

            await eventually(delivered)
            text = (await gw.client.get("/metrics")).text
            assert sample(text, "hig_lane_depth", destination="national", state="delivered") == 1
            assert sample(text, "hig_ops_actions_total", action="replay", outcome="ok") == 1


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    apps = [create_app(base_settings(tmp_path / name), runtime=build_runtime(
        base_settings(tmp_path / name), make_store("sqlite", tmp_path / name, name))) for name in ("a", "b")]
    first, second = (app.state.ops.metrics for app in apps)
    assert first.registry is not second.registry
    first.intake.labels("city-12345-rest", "created").inc()
    assert sample(second.exposition().decode(), "hig_intake_total", adapter="city-12345-rest") is None
    assert sample(first.exposition().decode(), "hig_intake_total", adapter="city-12345-rest") == 1
