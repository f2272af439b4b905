"""One loopback world for the end-to-end tests: the gateway, the national simulator and the six partner simulators.

The gateway is the real application (`gateway.app.create_app`) served by uvicorn in a thread, with a temporary
copy of `config/` whose URLs point at the simulators' free ports, with short poll intervals and retry delays.
Everything is read back through public interfaces: the gateway's ops API, the simulators' `/sim/...` APIs and
their recorded (signature-verified) callbacks.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterator, Sized
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from adapters.wire.webhooks import generate_secret
from gateway.app import create_app
from gateway.config import GatewaySettings, load_settings
from gateway.runtime import Runtime
from simulators.city12345.app import City12345
from simulators.city12345.app import run_in_thread as run_city
from simulators.credit.app import CreditSupervision
from simulators.credit.app import run_in_thread as run_credit
from simulators.emergency.app import EmergencyCommand
from simulators.emergency.app import run_in_thread as run_emergency
from simulators.enforcement.app import EnforcementCaseSystem
from simulators.enforcement.app import run_in_thread as run_enforcement
from simulators.legacy.app import LegacyRegistration
from simulators.legacy.app import run_in_thread as run_legacy
from simulators.national.config import FaultPlan
from simulators.national.runner import run_national_simulator
from simulators.peer import DEV_CREDENTIALS, serve_in_thread
from simulators.province12345.app import FIXTURES as PROVINCE_FIXTURES
from simulators.province12345.app import Province12345
from simulators.province12345.runner import RunningProvince
from simulators.province12345.runner import run_in_thread as run_province

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
T = TypeVar("T")

VIEWER_TOKEN = "e2e-viewer-token-4f1b2c9d"
ENVIRONMENT = {
    **DEV_CREDENTIALS,
    "PARTNER_PROVINCE12345_WSSE_PASSWORD": "e2e-province-wsse-password",
    "PARTNER_PROVINCE12345_INBOUND_PASSWORD": "e2e-province-inbound-password",
    "HIG_NATIONAL_TOKEN": "e2e-national-token",
    "HIG_OPS_TOKEN_VIEWER": VIEWER_TOKEN,
    "HIG_OPS_TOKEN_OPERATOR": "e2e-operator-token-7d0a3e51",
    "HIG_OPS_TOKEN_ADMIN": "e2e-admin-token-2c8e6f04",
}

# The partner's own number of a ticket, as it appears in its callbacks (the reverse specs' first field).
CALLBACK_NUMBER = {
    "city-12345-rest": "hotlineNo",
    "legacy-registration": "djbh",
    "credit-supervision": "CLUEID",
    "enforcement-case": "record_no",
    "emergency-command": "eventId",
}
# The final status CLOSED (办结) in each partner's own codes: (field, value) of its callback.
CLOSED_CODE = {
    "city-12345-rest": ("handleStatus", "2"),
    "legacy-registration": ("dqzt", "13"),
    "credit-supervision": ("STATE", "3"),
    "enforcement-case": ("status_code", "90"),
    "emergency-command": ("feedbackType", "FINISHED"),
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.2, *,
             explain: Callable[[], str] | None = None) -> T:
    """Call `check` until it returns something other than None, False or an empty collection (a list of
    callbacks that has none yet is not an answer); fail naming `what` after `timeout`, with what `explain` says
    about the state it was left in."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False and not (isinstance(result, Sized) and len(result) == 0):
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}" + (f"\n{explain()}" if explain else ""))
        time.sleep(interval)


@dataclass(frozen=True)
class Timing:
    """How fast the world moves: national lane retries, the breaker, pollers, the platform's lifecycle."""

    auto_advance_seconds: float | None = None
    national_timeout: float = 1.5  # the gateway's timeout (connect and total) for one national call
    event_max_attempts: int = 12
    event_retry_max_seconds: float = 1.0
    credit_lookup_timeout: float = 0.5
    national_max_attempts: int = 60  # a few: a failing platform dead-letters the forward quickly


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _write_yaml(path: Path, data: Any) -> None:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


QUICK_RETRY = {"backoff": "exponential", "initial_delay": "0.1s", "max_delay": "1s", "jitter": "equal",
               "max_attempts": 60, "max_age": "1h", "retry_after_max": "2s"}


def write_config(target: Path, *, gateway_port: int, national_url: str, partners: dict[str, str],
                 province_wsdl: str, timing: Timing) -> Path:
    """A copy of config/ for this world; the path of its gateway.yaml."""
    shutil.copytree(CONFIG, target)
    gateway = _read_yaml(target / "gateway.yaml")
    gateway["server"]["port"] = gateway_port
    gateway["data_dir"] = str(target.parent / "data")
    gateway["logging"]["level"] = "WARNING"
    gateway["credit_lookup"] = {"url": partners["credit-supervision"] + "/api/credit/{uscc}",
                                "timeout_seconds": timing.credit_lookup_timeout}
    gateway["demo"]["simulators"] = False
    _write_yaml(target / "gateway.yaml", gateway)

    delivery = _read_yaml(target / "delivery.yaml")
    delivery["engine"] = {"reaper_interval": "1s", "stop_grace": "2s", "idle_poll_min": 0.02, "idle_poll_max": 0.2,
                          "store_retry_delay": "0.2s"}
    routed = {"enforcement": partners["enforcement-case"] + "/api/cases",
              "credit": partners["credit-supervision"] + "/api/credit/cases",
              "emergency": partners["emergency-command"] + "/api/tickets"}
    for destination in delivery["destinations"]:
        name = destination["name"]
        if name == "national":
            destination["url"] = national_url + "/api/v1/tickets"
            destination["timeout"] = {"connect": f"{timing.national_timeout}s", "total": f"{timing.national_timeout}s"}
            destination["retry"] = {**QUICK_RETRY, "max_attempts": timing.national_max_attempts}
            # 30 % of calls fail on purpose: the breaker may open only when nearly everything fails.
            destination["breaker"] = {"failure_ratio": 0.8, "window": "10s", "min_calls": 20, "cool_down": "0.5s"}
        else:
            destination["url"] = routed[name]
            destination["timeout"] = {"connect": "2s", "total": "5s"}
            destination["retry"] = QUICK_RETRY
    _write_yaml(target / "delivery.yaml", delivery)

    for file in sorted((target / "adapters").glob("*.yaml")):
        adapter = _read_yaml(file)
        base = partners.get(adapter["id"])
        callback = adapter.get("callback")
        if callback is not None:
            if callback.get("url") is not None and base is not None:
                callback["url"] = base + "/callbacks"
            callback["retry"] = QUICK_RETRY
            callback["timeout"] = {"connect": "2s", "total": "5s"}
        poll = adapter.get("poll")
        if poll is not None:
            if poll.get("url") is not None and base is not None:
                poll["url"] = base + str(httpx.URL(poll["url"]).path)
            poll["interval_seconds"] = "0.3s"
            poll["backoff"] = {"initial": "0.2s", "factor": 2, "max": "1s"}
            poll["timeout"] = {"connect": "2s", "total": "5s"}
        options = adapter.get("options") or {}
        if "ack_url" in options and base is not None:
            options["ack_url"] = base + str(httpx.URL(options["ack_url"]).path)
        if "wsdl" in options:
            options["wsdl"] = province_wsdl
        _write_yaml(file, adapter)
    return target / "gateway.yaml"


def province_fixture(name: str, infoid: str) -> dict[str, Any]:
    """A work order of the province's mapping fixtures under a new infoid."""
    order: dict[str, Any] = json.loads((PROVINCE_FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    order["infoid"] = infoid
    return order


@dataclass
class World:
    """Everything running on loopback, and clients to read it back."""

    gateway_url: str
    national_url: str
    settings: GatewaySettings
    runtime: Runtime
    city: City12345
    legacy: LegacyRegistration
    enforcement: EnforcementCaseSystem
    credit: CreditSupervision
    emergency: EmergencyCommand
    province: RunningProvince
    client: httpx.Client

    # -- the gateway (ops API, viewer role: personal data masked, which these tests do not read) ----------
    def tickets(self, **params: Any) -> list[dict[str, Any]]:
        response = self.client.get(f"{self.gateway_url}/api/v1/tickets", params={"limit": 500, **params},
                                   headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def ticket(self, ticket_id: str) -> dict[str, Any]:
        response = self.client.get(f"{self.gateway_url}/api/v1/tickets/{ticket_id}",
                                   headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
        response.raise_for_status()
        detail: dict[str, Any] = response.json()
        return detail

    def deliveries(self, **params: Any) -> list[dict[str, Any]]:
        response = self.client.get(f"{self.gateway_url}/api/v1/deliveries", params={"limit": 500, **params},
                                   headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def quarantined(self) -> list[dict[str, Any]]:
        response = self.client.get(f"{self.gateway_url}/api/v1/quarantine", params={"limit": 500},
                                   headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    # -- the national simulator ---------------------------------------------------------------------------
    def national(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, f"{self.national_url}{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def national_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.national("GET", "/sim/stats")
        return stats

    def national_events(self, number: str | None = None) -> list[dict[str, Any]]:
        params = {"national_registration_no": number} if number else {}
        events: list[dict[str, Any]] = self.national("GET", "/sim/events", params=params)["events"]
        return events

    def national_tickets(self) -> list[dict[str, Any]]:
        """Every ticket the platform registered (an /api/ call: only while no faults are planned)."""
        token = os.environ["HIG_NATIONAL_TOKEN"]
        found: list[dict[str, Any]] = self.national("GET", "/api/v1/tickets",
                                                    headers={"Authorization": f"Bearer {token}"})["tickets"]
        return found

    def issue_event(self, number: str, **body: Any) -> dict[str, Any]:
        event: dict[str, Any] = self.national("POST", f"/sim/tickets/{number}/events", json=body)
        return event

    def resend_event(self, event_id: str) -> None:
        self.national("POST", f"/sim/events/{event_id}/resend")

    def event_record(self, event_id: str) -> dict[str, Any]:
        return next(e for e in self.national_events() if e["event"]["event_id"] == event_id)

    def wait_event_settled(self, event_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """The platform's record of an event once it is delivered or failed (not pending)."""
        def settled() -> dict[str, Any] | None:
            record = self.event_record(event_id)
            return record if record["state"] in ("delivered", "failed") else None
        return wait_for(f"event {event_id} to be settled", settled, timeout, 0.1)


@contextmanager
def running_world(tmp: Path, *, faults: FaultPlan | None = None, seed: int | None = None,
                  timing: Timing | None = None, adjust: Callable[[Path], None] | None = None) -> Iterator[World]:
    """Start the simulators, then the gateway pointed at them; stop everything on exit. `adjust` changes the
    world's copy of config/ (given its folder) before the gateway reads it."""
    timing = timing or Timing()
    status_secret = generate_secret()
    gateway_port = free_port()
    gateway_url = f"http://127.0.0.1:{gateway_port}"
    with pytest.MonkeyPatch.context() as patch, ExitStack() as stack:
        for name, value in {**ENVIRONMENT, "HIG_NATIONAL_STATUS_SECRETS": status_secret}.items():
            patch.setenv(name, value)
        for name in [n for n in os.environ if n.startswith("HIG_") and "__" in n]:
            patch.delenv(name)  # a developer's HIG_SECTION__KEY override must not leak into this world
        national_url = stack.enter_context(run_national_simulator(
            gateway_status_url=f"{gateway_url}/api/v1/national/status", secrets=[status_secret],
            token=ENVIRONMENT["HIG_NATIONAL_TOKEN"], auto_advance_seconds=timing.auto_advance_seconds,
            seed=seed, faults=faults or FaultPlan(), event_max_attempts=timing.event_max_attempts,
            event_retry_initial_seconds=0.2, event_retry_max_seconds=timing.event_retry_max_seconds,
            event_timeout_seconds=5.0))
        city = stack.enter_context(run_city(gateway_url=gateway_url))
        legacy = stack.enter_context(run_legacy(seed=False))
        enforcement = stack.enter_context(run_enforcement(gateway_url=gateway_url))
        credit = stack.enter_context(run_credit(seed=False))
        emergency = stack.enter_context(run_emergency(gateway_url=gateway_url))
        province = stack.enter_context(run_province(Province12345(
            username="hig-gateway", password=ENVIRONMENT["PARTNER_PROVINCE12345_WSSE_PASSWORD"])))
        partners = {"city-12345-rest": str(city.url), "legacy-registration": str(legacy.url),
                    "enforcement-case": str(enforcement.url), "credit-supervision": str(credit.url),
                    "emergency-command": str(emergency.url)}
        config = write_config(tmp / "config", gateway_port=gateway_port, national_url=national_url,
                              partners=partners, province_wsdl=province.wsdl_url, timing=timing)
        if adjust is not None:
            adjust(config.parent)
        settings = load_settings(config)
        app = create_app(settings)
        stack.enter_context(serve_in_thread(app, name="gateway-e2e", port=gateway_port, startup_timeout=30))
        client = stack.enter_context(httpx.Client(timeout=10, trust_env=False))
        yield World(gateway_url=gateway_url, national_url=national_url, settings=settings,
                    runtime=app.state.runtime, city=city, legacy=legacy, enforcement=enforcement, credit=credit,
                    emergency=emergency, province=province, client=client)


def callbacks_by_number(callbacks: list[dict[str, Any]], field: str) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for callback in callbacks:
        body = callback["body"] if isinstance(callback["body"], dict) else {}
        grouped.setdefault(str(body.get(field)), []).append(callback)
    return grouped
