"""After a SIGKILL, the restarted gateway polls again at once: it recognises the poll lock the killed process of
this host still holds (never released) and takes it over, instead of waiting out its ttl (60 s by default)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from simulators.province12345 import Province12345, run_in_thread
from tests.hardening.live_gateway import PROVINCE, running, serve, write_config

pytestmark = pytest.mark.slow

GATEWAY_USER = "hig-gateway"  # options.wsse.username of the province adapter
LOCK_TTL = 60.0  # the poll lock's ttl with this configuration (poll.lock_ttl: at least 60 s)


def _wait_for_polls(state: Province12345, more_than: int, within: float) -> float:
    started = time.monotonic()
    while state.calls["GetPendingOrders"] <= more_than:
        if time.monotonic() - started > within:
            raise AssertionError(f"no poll within {within} s")
        time.sleep(0.1)
    return time.monotonic() - started


def test_a_restarted_gateway_takes_over_the_poll_lock_its_killed_predecessor_held(tmp_path: Path) -> None:
    state = Province12345()
    with run_in_thread(state) as province:
        files = write_config(tmp_path, ports={8317: int(province.base_url.rsplit(":", 1)[1])}, workers=False,
                             pollers=True, adapters={PROVINCE: {"poll": {"interval_seconds": "1s"}}})
        state.username = GATEWAY_USER
        state.password = files.credentials["PARTNER_PROVINCE12345_WSSE_PASSWORD"]
        gateway = serve(files)
        with running(gateway):
            _wait_for_polls(state, 0, within=60)
            gateway.kill()  # no shutdown code: the lock stays in the store until its ttl ends
            polls_before = state.calls["GetPendingOrders"]
            gateway.start()
            # The killed process's lock would hold the poller off for a minute. That it did not is told by the
            # takeover (a lock that ran out has no holder to take it from), not by a clock: the wait is generous.
            waited = _wait_for_polls(state, polls_before, within=LOCK_TTL * 2)
            assert "took over the poll lock of a process that is gone" in gateway.log_text(), gateway.tail()
    assert set(state.user_agents) == {"hotline-interop-gateway"}, state.user_agents  # not "Zeep/4.x"
    print(f"\nrestarted gateway polled again {waited:.1f} s after its start (lock ttl {LOCK_TTL:g} s)")
