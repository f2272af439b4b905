"""Run the provincial 12345 simulator under uvicorn: in the foreground (CLI) or in a thread on a free port (tests)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn

from simulators.province12345.app import SOAP_PATH, Province12345, create_app


def build_server(province: Province12345, host: str = "127.0.0.1", port: int = 8317) -> uvicorn.Server:
    config = uvicorn.Config(create_app(province), host=host, port=port, log_config=None, access_log=False,
                            proxy_headers=False, lifespan="off", timeout_graceful_shutdown=1)
    return uvicorn.Server(config)


@dataclass(frozen=True)
class RunningProvince:
    """A simulator serving on loopback: its URLs and its state (read it directly, it is thread-safe)."""

    base_url: str
    province: Province12345

    @property
    def soap_url(self) -> str:
        return self.base_url + SOAP_PATH

    @property
    def wsdl_url(self) -> str:
        return self.soap_url + "?wsdl"


@contextmanager
def run_in_thread(province: Province12345 | None = None, *, seed: bool = True, host: str = "127.0.0.1",
                  port: int = 0, startup_timeout: float = 10.0, **behaviour: Any) -> Iterator[RunningProvince]:
    """Serve a simulator in a background thread; yields it once it accepts connections.

    Without `province` a new one is made, holding the fixture work orders when `seed`; `behaviour`
    sets Behaviour fields (delay_seconds, server_faults, http_errors, response_charset).
    """
    from simulators.province12345.app import BehaviourUpdate

    if province is None:
        province = Province12345()
        if seed:
            province.seed_fixtures()
    if behaviour:
        province.update_behaviour(BehaviourUpdate.model_validate(behaviour))
    server = build_server(province, host=host, port=port)
    thread = threading.Thread(target=server.run, name="province12345-simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            thread.join(startup_timeout)
            raise RuntimeError(f"the provincial 12345 simulator did not start on {host}:{port}")
        time.sleep(0.01)
    bound_port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningProvince(base_url=f"http://{host}:{bound_port}", province=province)
    finally:
        server.should_exit = True
        thread.join(startup_timeout)
