"""`python main.py worker`: delivery lane workers only (no HTTP) against the configured store."""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path
from typing import Annotated

import typer

from adapters.base import Adapter
from adapters.destination import DestinationConfig
from adapters.wire.senders import Sender
from gateway.config import ConfigError, GatewaySettings, load_settings
from gateway.delivery.config import DeliveryConfig, DeliveryConfigError, load_delivery_config
from gateway.store import TicketStore

log = logging.getLogger(__name__)


def worker(
    config: Annotated[Path | None, typer.Option("--config", "-c",
                                                help="gateway.yaml (default: config/gateway.yaml)")] = None,
    destinations: Annotated[Path | None, typer.Option(
        help="the delivery destinations (default: the delivery_file of gateway.yaml)")] = None,
    worker_id: Annotated[str | None, typer.Option(help="name of this worker in leases and logs")] = None,
    redis_namespace: Annotated[str, typer.Option(help="key prefix on a shared Redis")] = "hig",
) -> None:
    """Run delivery lane workers only (no HTTP); start several on one Redis to share the lanes."""
    from gateway.logs import configure_logging

    try:
        settings = load_settings(config)
        delivery = load_delivery_config(destinations or settings.resolve(settings.delivery_file))
    except (ConfigError, DeliveryConfigError) as err:
        typer.echo(f"configuration error:\n{err}", err=True)
        raise typer.Exit(2) from err
    configure_logging(settings.logging.level, settings.logging.json_lines)
    from gateway.store import StoreFileInUse, serving_store

    try:
        with serving_store(settings, f"the delivery worker {worker_id or '(unnamed)'}", gateway=False, workers=True):
            asyncio.run(run_worker(settings, delivery, worker_id=worker_id, redis_namespace=redis_namespace))
    except StoreFileInUse as err:
        typer.echo(f"refused: {err}", err=True)
        raise typer.Exit(1) from err


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
        destinations, senders, adapters = _gateway_lanes(settings, delivery, store)
        engine = DeliveryEngine(store, destinations, settings=delivery.engine, senders=senders, worker_id=worker_id)
        try:
            async with engine.run_in_app():
                log.info("worker running", extra={"worker_id": engine.worker_id, "store": settings.store.kind,
                                                  "destinations": [d.name for d in destinations]})
                await stop.wait()
                log.info("worker stopping", extra={"worker_id": engine.worker_id})
        finally:
            for sender in senders.values():  # made for this engine by lanes(): nobody else closes them
                await sender.aclose()
            for adapter in adapters:
                await adapter.aclose()


def _gateway_lanes(settings: GatewaySettings, delivery: DeliveryConfig, store: TicketStore
                   ) -> tuple[list[DestinationConfig], dict[str, Sender], list[Adapter]]:
    """The lanes as the gateway process composes them (gateway.runtime.lanes): the national destination with
    its token, keeping the registration numbers it answers, and every adapter's callback lane. Where the
    gateway's configuration (adapters, routing, rules) is not beside gateway.yaml, only the destinations
    file's lanes, as they are written."""
    from adapters.registry import build_adapters
    from gateway.runtime import lanes, load_components

    try:
        components = load_components(settings)
    except (OSError, ValueError) as err:
        log.warning("no gateway configuration beside the destinations: only their lanes run, as written",
                    extra={"reason": str(err).splitlines()[0] if str(err) else type(err).__name__})
        return list(delivery.destinations), {}, []
    if settings.demo.generate_credentials:  # the demo's partner credentials, generated under the shared data dir
        from adapters.secrets import ensure_demo_credentials

        ensure_demo_credentials(settings.resolved_data_dir, components.adapter_configs)
    adapters = build_adapters(components.adapter_configs)
    destinations, senders = lanes(components, adapters, store, delivery.destinations)
    return destinations, senders, list(adapters.values())
