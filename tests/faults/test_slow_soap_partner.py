"""A slow SOAP partner: the provincial 12345 system answers after 30 s, far beyond the poll's 1 s timeout. The
gateway records each timeout, backs off, never has more than one poll in flight, and takes the orders as
soon as the partner is quick again."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

from simulators.province12345 import Province12345, run_in_thread
from simulators.province12345.app import BehaviourUpdate
from tests.hardening.live_gateway import PROVINCE, running, serve, write_config

pytestmark = pytest.mark.slow

PARTNER_DELAY = 30.0
POLL_TIMEOUT = 1.0
OBSERVE_SECONDS = 8.0
GATEWAY_USER = "hig-gateway"  # options.wsse.username of config/adapters/province-12345-soap.yaml


def _failures_gauge(metrics: str) -> float:
    match = re.search(r'hig_poller_consecutive_failures\{adapter="province-12345-soap"\} (\S+)', metrics)
    assert match, metrics[-1500:]
    return float(match.group(1))


def test_a_slow_soap_partner_times_out_without_a_pile_up_of_polls(tmp_path: Path) -> None:
    state = Province12345()
    state.seed_fixtures()
    with run_in_thread(state, delay_seconds=PARTNER_DELAY) as province:
        files = write_config(
            tmp_path, ports={8317: int(province.base_url.rsplit(":", 1)[1])}, workers=False, pollers=True,
            adapters={PROVINCE: {"poll": {"interval_seconds": "0.2s", "timeout": {"connect": "1s",
                                                                               "total": f"{POLL_TIMEOUT}s"},
                                          "backoff": {"initial": "0.2s", "factor": 2, "max": "1s"}}}})
        state.username = GATEWAY_USER
        state.password = files.credentials["PARTNER_PROVINCE12345_WSSE_PASSWORD"]
        with running(serve(files)) as gateway, httpx.Client(timeout=10, trust_env=False) as http:
            time.sleep(OBSERVE_SECONDS)
            slow_calls = state.calls["GetPendingOrders"]
            most_in_flight = state.max_in_flight["GetPendingOrders"]
            failures = _failures_gauge(http.get(f"{files.url}/metrics").text)
            assert http.get(f"{files.url}/healthz").status_code == 200  # the API never waited on the poller
            state.update_behaviour(BehaviourUpdate(delay_seconds=0))
            quick = time.monotonic()
            while not state.acked_ids():
                assert time.monotonic() - quick < 60, "the poller did not recover once the partner was quick"
                time.sleep(0.1)
            recovered = time.monotonic() - quick
            time.sleep(0.5)
            failures_after = _failures_gauge(http.get(f"{files.url}/metrics").text)
            log = [json.loads(line) for line in gateway.log_text().splitlines() if line.startswith("{")]
    timeouts = [e for e in log if e.get("event") == "poll failed; backing off" and e.get("adapter_id") == PROVINCE]
    print(f"\nslow SOAP partner: {slow_calls} GetPendingOrders calls in {OBSERVE_SECONDS:g} s against a "
          f"{PARTNER_DELAY:g} s partner, at most {most_in_flight} in flight; {len(timeouts)} timeouts logged "
          f"(e.g. {timeouts[0]['error'] if timeouts else None!r}); failure gauge {failures:g}; orders taken "
          f"{recovered:.1f} s after the partner was quick ({len(state.acked_ids())} acknowledged)")
    assert most_in_flight == 1  # a timed-out poll is abandoned before the next one starts
    assert 3 <= slow_calls <= OBSERVE_SECONDS / POLL_TIMEOUT + 1  # retried, but backing off, not hammering
    assert timeouts and all("Timeout" in str(e["error"]) for e in timeouts)
    # Each says what did not finish and within what, never a bare "TimeoutError: ".
    assert all(not str(e["error"]).rstrip().endswith(":") and f"{POLL_TIMEOUT:g} s" in str(e["error"])
               for e in timeouts), [e["error"] for e in timeouts]
    assert failures >= 3
    assert failures_after == 0
    assert state.in_flight["GetPendingOrders"] == 0
