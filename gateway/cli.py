"""The command line: serve the gateway, check configuration, export the contract's schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
    from gateway.logs import configure_logging

    settings = _settings(config)
    configure_logging(settings.logging.level, settings.logging.json_lines)
    uvicorn.run(create_app(settings, peers=ctx.obj), host=host or settings.server.host,
                port=port or settings.server.port, log_config=None, access_log=False)


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
               f"{len(components.jurisdiction.rules)} jurisdiction rules")


@schema_cli.command("export")
def schema_export(directory: Annotated[Path | None, typer.Option(help="where to write")] = None) -> None:
    """Write the contract's JSON Schema files to contracts/schema/."""
    from contracts.schema_export import SCHEMA_DIR, export_schemas

    for path in export_schemas(directory or SCHEMA_DIR):
        typer.echo(str(path))


cli.command("worker")(worker)
cli.command("map")(map_command)
cli.command("migrate")(migrate)
