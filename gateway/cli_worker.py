"""`python main.py worker`: delivery lane workers only (no HTTP) against the configured store."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from gateway.config import ConfigError, GatewaySettings, load_settings
from gateway.delivery.config import DeliveryConfig, DeliveryConfigError, load_delivery_config

DESTINATIONS_FILE = "destinations.yaml"

log = logging.getLogger(__name__)


def worker(
    config: Annotated[Path | None, typer.Option("--config", "-c",
                                                help="gateway.yaml (default: config/gateway.yaml)")] = None,
    destinations: Annotated[Path | None, typer.Option(
        help=f"the delivery destinations (default: {DESTINATIONS_FILE} next to gateway.yaml)")] = None,
    worker_id: Annotated[str | None, typer.Option(help="name of this worker in leases and logs")] = None,
    redis_namespace: Annotated[str, typer.Option(help="key prefix on a shared Redis")] = "hig",
) -> None:
    """Run delivery lane workers only (no HTTP); start several on one Redis to share the lanes."""
    from gateway.logs import configure_logging

    try:
        settings = load_settings(config)
        delivery = load_delivery_config(destinations or settings.resolve(DESTINATIONS_FILE))
    except (ConfigError, DeliveryConfigError) as err:
        typer.echo(f"configuration error:\n{err}", err=True)
        raise typer.Exit(2) from err
    configure_logging(settings.logging.level, settings.logging.json_lines)
    asyncio.run(run_worker(settings, delivery, worker_id=worker_id, redis_namespace=redis_namespace))


async def run_worker(settings: GatewaySettings, delivery: DeliveryConfig, *, worker_id: str | None = None,
                     redis_namespace: str = "hig", stop: asyncio.Event | None = None) -> None:
    """Work the configured lanes until SIGTERM/SIGINT (or `stop`), then stop gracefully."""
    from gateway.delivery.engine import DeliveryEngine
    from gateway.store import open_store

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    async with open_store(settings, redis_namespace=redis_namespace) as store:
        engine = DeliveryEngine.from_config(store, delivery, worker_id=worker_id)
        async with engine.run_in_app():
            log.info("worker running", extra={"worker_id": engine.worker_id, "store": settings.store.kind,
                                              "destinations": [d.name for d in delivery.destinations]})
            await stop.wait()
            log.info("worker stopping", extra={"worker_id": engine.worker_id})
