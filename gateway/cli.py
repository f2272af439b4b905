"""The command line: serve the gateway, check configuration, export the contract's schema."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from gateway.cli_backup import backup_command, restore_command
from gateway.cli_links import links_cli
from gateway.cli_map import map_command
from gateway.cli_migrate import migrate
from gateway.cli_ops import deliveries_cli, ops_cli, quarantine_cli, tickets_cli
from gateway.cli_organisations import organisations_cli
from gateway.cli_review import review_cli
from gateway.cli_worker import worker
from gateway.config import ConfigError, GatewaySettings, load_settings

cli = typer.Typer(help="Hotline Interop Gateway: partner systems ⇄ the national 12315 platform.",
                  no_args_is_help=False, add_completion=False)
schema_cli = typer.Typer(help="The national contract's JSON Schema.", add_completion=False)
cli.add_typer(schema_cli, name="schema")
tickets_cli.add_typer(review_cli, name="review")
tickets_cli.add_typer(links_cli, name="links")
cli.add_typer(tickets_cli, name="tickets")
cli.add_typer(deliveries_cli, name="deliveries")
cli.add_typer(quarantine_cli, name="quarantine")
cli.add_typer(ops_cli, name="ops")
cli.add_typer(organisations_cli, name="organisations")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="gateway.yaml (default: config/gateway.yaml)")
]


def _settings(config: Path | None) -> GatewaySettings:
    try:
        return load_settings(config)
    except ConfigError as err:
        typer.echo(f"configuration error:\n{err}", err=True)
        raise typer.Exit(2) from err


@cli.callback(invoke_without_command=True)
def default(ctx: typer.Context, config: ConfigOption = None) -> None:
    """With no command, serve the gateway."""
    if ctx.invoked_subcommand is None:
        serve(ctx, config=config)


@cli.command()
def serve(ctx: typer.Context, config: ConfigOption = None,
          host: Annotated[str | None, typer.Option(help="override server.host")] = None,
          port: Annotated[int | None, typer.Option(help="override server.port")] = None) -> None:
    """Run the gateway (API and workers) on the configured store.

    The peers to serve beside it (the demo's simulators) come from whoever runs the command line: `main.py`
    passes them as the context object."""
    import uvicorn

    from gateway.app import create_app
    from gateway.http.server import GatewayServer
    from gateway.logs import configure_logging
    from gateway.store import StoreFileInUse, serving_store

    settings = _settings(config)
    configure_logging(settings.logging.level, settings.logging.json_lines)
    host, port = host or settings.server.host, port or settings.server.port
    try:
        with serving_store(settings, f"the gateway on {host}:{port}", gateway=True, workers=settings.workers), \
                listening(host, port) as sock:
            if settings.demo.simulators and ctx.obj is not None:
                free_or_exit(settings.server.host, settings.demo.national_port, "demo.national_port")
            server = GatewayServer(uvicorn.Config(create_app(settings, peers=ctx.obj), log_config=None,
                                                  access_log=False))
            server.run(sockets=[sock])
    except StoreFileInUse as err:
        typer.echo(f"refused: {err}", err=True)
        raise typer.Exit(1) from err


@contextmanager
def listening(host: str, port: int) -> Iterator[socket.socket]:
    """The server's socket, bound before anything starts; a port in use is one line naming it, then exit 1."""
    # IPPROTO_TCP, not 0: asyncio turns Nagle off (TCP_NODELAY) only on accepted sockets of that protocol, and
    # with Nagle on, each small answer waited for a delayed ACK (about 40 ms a push; intake fell to a third).
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        typer.echo(f"cannot listen on {host}:{port}: {err.strerror} (another gateway? set server.port or "
                   f"HIG_SERVER__PORT)", err=True)
        raise typer.Exit(1) from err
    try:
        yield sock
    finally:
        sock.close()


def free_or_exit(host: str, port: int, key: str) -> None:
    """A port the demo's peers need, checked before they start: in use is one line naming it, then exit 1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as err:
            typer.echo(f"cannot listen on {host}:{port} for the demo's national simulator: {err.strerror} "
                       f"(set {key} or HIG_DEMO__NATIONAL_PORT)", err=True)
            raise typer.Exit(1) from err


@cli.command("check-config")
def check_config(file: Annotated[Path | None, typer.Argument(help="gateway.yaml to check")] = None) -> None:
    """Check a configuration file and everything it names; exit 2 naming each problem."""
    from contracts.codetables import default_code_tables
    from gateway.runtime import load_components

    settings = _settings(file)
    tables = default_code_tables()
    try:
        components = load_components(settings)
    except (OSError, ValueError) as err:  # every loader names file, line and key in its message
        typer.echo(f"configuration error:\n{err}", err=True)
        raise typer.Exit(2) from err
    typer.echo(f"ok: region {settings.region.code} {settings.region.name}, store {settings.store.kind}, "
               f"{len(tables)} code tables, {len(components.adapter_configs)} adapters, "
               f"{len(components.specs)} mapping specs, {len(components.delivery.destinations)} destinations, "
               f"{len(components.router.config.rules)} routing rules, "
               f"{len(components.jurisdiction.rules)} jurisdiction rules, "
               f"{len(components.alerts.channels)} alert channels")


@schema_cli.command("export")
def schema_export(directory: Annotated[Path | None, typer.Option(help="where to write")] = None) -> None:
    """Write the contract's JSON Schema files to contracts/schema/."""
    from contracts.schema_export import SCHEMA_DIR, export_schemas

    for path in export_schemas(directory or SCHEMA_DIR):
        typer.echo(str(path))


cli.command("worker")(worker)
cli.command("backup")(backup_command)
cli.command("restore")(restore_command)
cli.command("map")(map_command)
cli.command("migrate")(migrate)
