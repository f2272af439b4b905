"""The emergency simulator: incidents pushed with an API key, an inbox for 特急 tickets, signed callbacks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI

from simulators.peer import (
    DEFAULT_GATEWAY_URL,
    CallbackRecorder,
    Faults,
    Inbox,
    Pusher,
    PushResult,
    credential,
    load_fixtures,
    mount_callbacks,
    mount_faults,
    mount_inbox,
    mount_push,
    serve_in_thread,
    with_fresh_number,
)

ADAPTER_ID = "emergency-command"
DEFAULT_PORT = 8415
NUMBER_PATH = ("incident", "eventId")


class EmergencyCommand:
    """Incidents this system sends (its own shape), 特急 tickets it receives, callbacks it hears."""

    def __init__(self, *, gateway_url: str = DEFAULT_GATEWAY_URL, adapter_id: str = ADAPTER_ID,
                 api_key: str | None = None, callback_secret: str | None = None, inbox_api_key: str | None = None,
                 timeout: float = 10.0) -> None:
        self.adapter_id = adapter_id
        self.incidents: dict[str, dict[str, Any]] = load_fixtures(ADAPTER_ID)
        self.pusher = Pusher(gateway_url, adapter_id, api_key=api_key or credential("PARTNER_EMERGENCY_API_KEY"),
                             timeout=timeout)
        self.callbacks = CallbackRecorder(callback_secret or credential("PARTNER_EMERGENCY_CALLBACK_SECRET"))
        self.tickets = Inbox("YJZH-SIM-", api_key=inbox_api_key)
        self.faults = Faults()  # /sim/faults: the partner's endpoints fail or slow down
        self.url: str | None = None

    def push(self, incident: dict[str, Any]) -> PushResult:
        return self.pusher.push(incident)

    def push_fixture(self, name: str, *, fresh: bool = False) -> PushResult:
        incident = self.incidents[name]
        return self.push(with_fresh_number(incident, NUMBER_PATH) if fresh else incident)


def create_app(sim: EmergencyCommand) -> FastAPI:
    app = FastAPI(title="Emergency command system simulator", version="1.0",
                  summary="Pushes incidents to the gateway; receives 特急 tickets (POST /api/tickets).")
    mount_callbacks(app, sim.callbacks, faults=sim.faults)
    mount_faults(app, sim.faults)
    mount_push(app, sim.pusher, sim.incidents, NUMBER_PATH)
    mount_inbox(app, sim.tickets, "/api/tickets", faults=sim.faults, number_field="dispatch_no")
    return app


@contextmanager
def run_in_thread(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[EmergencyCommand]:
    """The simulator served on loopback in a thread (port 0: a free one); `options` go to EmergencyCommand."""
    sim = EmergencyCommand(**options)
    with serve_in_thread(create_app(sim), name="emergency", host=host, port=port) as url:
        sim.url = url
        try:
            yield sim
        finally:
            sim.url = None
