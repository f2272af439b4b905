"""Entry point and composition root: `hig` (or `python main.py`) serves the gateway on 127.0.0.1:8315 with the demo
configuration and, when `demo.simulators` is set, the national and partner simulators beside it."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.cli import cli
from gateway.config import GatewaySettings
from gateway.runtime import Runtime, national_status_secrets, national_token
from simulators.demo import run_demo_simulators


@asynccontextmanager
async def demo_peers(settings: GatewaySettings, runtime: Runtime) -> AsyncIterator[None]:
    """The simulators of every system the demo configuration talks to, on loopback."""
    async with run_demo_simulators(
        gateway_url=f"http://{settings.server.host}:{settings.server.port}",
        adapter_configs=runtime.components.adapter_configs,
        national_port=settings.demo.national_port,
        status_secrets=national_status_secrets(settings),
        national_token=national_token(settings),
        region_code=settings.region.code,
        auto_advance_seconds=settings.demo.national_auto_advance_seconds,
    ):
        yield


def main() -> None:
    """The `hig` console script."""
    cli(obj=demo_peers)
