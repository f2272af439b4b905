"""The city 12345 simulator: its seed tickets, its push to the gateway, its callback endpoint, its HTTP app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI

from simulators.peer import (
    DEFAULT_GATEWAY_URL,
    CallbackRecorder,
    Faults,
    Pusher,
    PushResult,
    credential,
    load_fixtures,
    mount_callbacks,
    mount_faults,
    mount_push,
    serve_in_thread,
    with_fresh_number,
)

ADAPTER_ID = "city-12345-rest"
DEFAULT_PORT = 8411
NUMBER_PATH = ("hotlineNo",)


class City12345:
    """The city hotline's side: tickets it holds, pushes it made, callbacks it received (verified)."""

    def __init__(self, *, gateway_url: str = DEFAULT_GATEWAY_URL, adapter_id: str = ADAPTER_ID,
                 api_key: str | None = None, callback_secret: str | None = None, timeout: float = 10.0) -> None:
        self.adapter_id = adapter_id
        self.tickets: dict[str, dict[str, Any]] = load_fixtures(ADAPTER_ID)
        self.pusher = Pusher(gateway_url, adapter_id, api_key=api_key or credential("PARTNER_CITY12345_API_KEY"),
                             timeout=timeout)
        self.callbacks = CallbackRecorder(callback_secret or credential("PARTNER_CITY12345_CALLBACK_SECRET"))
        self.faults = Faults()  # /sim/faults: the partner's endpoints fail or slow down
        self.url: str | None = None  # set while served

    @property
    def callback_url(self) -> str:
        if self.url is None:
            raise RuntimeError("the simulator is not being served")
        return f"{self.url}/callbacks"

    def push(self, payload: dict[str, Any]) -> PushResult:
        return self.pusher.push(payload)

    def push_fixture(self, name: str, *, fresh: bool = False) -> PushResult:
        """Push one seed ticket; `fresh` gives it a new hotlineNo so that it is a new ticket, not a repeat."""
        payload = self.tickets[name]
        return self.push(with_fresh_number(payload, NUMBER_PATH) if fresh else payload)


def create_app(sim: City12345) -> FastAPI:
    app = FastAPI(title="City 12345 hotline simulator", version="1.0",
                  summary="Pushes camelCase tickets to the gateway; receives and verifies signed status callbacks.")
    mount_callbacks(app, sim.callbacks, faults=sim.faults)
    mount_faults(app, sim.faults)
    mount_push(app, sim.pusher, sim.tickets, NUMBER_PATH)
    return app


@contextmanager
def run_in_thread(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[City12345]:
    """The simulator served on loopback in a thread (port 0: a free one); `options` go to City12345."""
    sim = City12345(**options)
    with serve_in_thread(create_app(sim), name="city12345", host=host, port=port) as url:
        sim.url = url
        try:
            yield sim
        finally:
            sim.url = None
