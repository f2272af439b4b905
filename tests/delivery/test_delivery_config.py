"""Destination configuration: checked at load, naming the file, line and key of each problem."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from adapters.destination import DestinationConfig
from gateway.delivery.config import DeliveryConfigError, load_delivery_config


def test_the_default_lease_outlives_the_total_timeout() -> None:
    dest = DestinationConfig(name="national", url="http://127.0.0.1:1/", timeout={"connect": 2, "total": 20})  # type: ignore[arg-type]
    assert dest.lease_seconds == 30


def test_a_lease_not_longer_than_the_timeout_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"must exceed timeout\.total"):
        DestinationConfig(name="national", url="http://127.0.0.1:1/", timeout={"total": 30}, lease=30)  # type: ignore[arg-type]


def test_connect_timeout_cannot_exceed_total() -> None:
    with pytest.raises(ValidationError, match="connect must not exceed"):
        DestinationConfig(name="national", url="http://127.0.0.1:1/", timeout={"connect": 40, "total": 30})  # type: ignore[arg-type]


def test_http_destination_needs_a_url() -> None:
    with pytest.raises(ValidationError, match="url is required"):
        DestinationConfig(name="national")


DESTINATIONS = """\
engine:
  reaper_interval: 2s
destinations:
  - name: national
    url: http://127.0.0.1:9000/api/tickets
    timeout: {connect: 3s, total: 15s}
    retry:
      backoff: schedule
      schedule: [5s, 30s, 5m, 30m, 2h, 6h, 12h, 24h]
      schedule_jitter_percent: 20
      max_age: 3d
    breaker: {failure_ratio: 0.5, window: 60s, min_calls: 20, cool_down: 30s}
    rate_limit: {rate: 50, burst: 10}
    concurrency: 16
  - name: enforcement
    url: http://127.0.0.1:9001/cases
    lease: 40s
"""


def test_a_destinations_file_loads(tmp_path: Path) -> None:
    file = tmp_path / "destinations.yaml"
    file.write_text(DESTINATIONS, encoding="utf-8")
    config = load_delivery_config(file)
    national, enforcement = config.destinations
    assert config.engine.reaper_interval == 2
    assert national.retry.schedule[-1] == 86400
    assert national.retry.max_age == 3 * 86400
    assert national.rate_limit.rate == 50
    assert national.concurrency == 16
    assert enforcement.lease == 40


def test_a_bad_destinations_file_names_line_and_key(tmp_path: Path) -> None:
    file = tmp_path / "destinations.yaml"
    file.write_text(DESTINATIONS.replace("lease: 40s", "lease: 20s"), encoding="utf-8")
    with pytest.raises(DeliveryConfigError) as caught:
        load_delivery_config(file)
    assert f"{file}:15: destinations[1]:" in str(caught.value)
    assert "must exceed timeout.total" in str(caught.value)


def test_an_unknown_key_is_refused(tmp_path: Path) -> None:
    file = tmp_path / "destinations.yaml"
    file.write_text(DESTINATIONS.replace("concurrency: 16", "concurency: 16"), encoding="utf-8")
    with pytest.raises(DeliveryConfigError, match=r"destinations\[0\]\.concurency"):
        load_delivery_config(file)


def test_destination_names_are_unique(tmp_path: Path) -> None:
    file = tmp_path / "destinations.yaml"
    file.write_text(DESTINATIONS.replace("name: enforcement", "name: national"), encoding="utf-8")
    with pytest.raises(DeliveryConfigError, match="unique: national"):
        load_delivery_config(file)
