"""Run the simulator under uvicorn: in the foreground (the CLI) or in a background thread on a free port (tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from simulators.national.app import create_app
from simulators.national.config import SimulatorConfig


def build_server(config: SimulatorConfig, host: str = "127.0.0.1", port: int = 8316,
                 graceful_shutdown_seconds: float = 3.0) -> uvicorn.Server:
    """A uvicorn server for the simulator; the fault wrapper must see uvicorn's own `send`, so no proxy layer."""
    server_config = uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        lifespan="on",
        # Requests held by the timeout fault would otherwise keep a shutdown waiting for them.
        timeout_graceful_shutdown=max(1, round(graceful_shutdown_seconds)),
    )
    return uvicorn.Server(server_config)


@contextmanager
def run_national_simulator(config: SimulatorConfig | None = None, *, host: str = "127.0.0.1", port: int = 0,
                           startup_timeout: float = 10.0, **overrides: Any) -> Iterator[str]:
    """Serve the simulator in a background thread on a free loopback port; yields its base URL.

    `overrides` are SimulatorConfig fields, e.g. ``run_national_simulator(gateway_status_url=url, seed=7)``.
    """
    base = config or SimulatorConfig()
    effective = SimulatorConfig.model_validate(base.model_dump() | overrides) if overrides else base
    server = build_server(effective, host=host, port=port, graceful_shutdown_seconds=1.0)
    thread = threading.Thread(target=server.run, name="national-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(startup_timeout)
            raise RuntimeError(f"the national simulator did not start on {host}:{port}")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(startup_timeout)
