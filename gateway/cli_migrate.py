"""`python main.py migrate`: bring the configured store's schema up to date on its own, or print what that runs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from gateway.config import ConfigError, load_settings
from gateway.store.errors import StoreError


def migrate(
    config: Annotated[Path | None, typer.Option("--config", "-c",
                                                help="gateway.yaml (default: config/gateway.yaml)")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print the SQL that would run; change nothing")] = False,
) -> None:
    """Apply the store's pending schema migrations (a gateway also applies them when it starts)."""
    from gateway.store.migrations import apply_migrations, plan_migrations

    try:
        settings = load_settings(config)
    except ConfigError as err:
        typer.echo(f"configuration error:\n{err}", err=True)
        raise typer.Exit(2) from err
    try:
        plan = asyncio.run(plan_migrations(settings) if dry_run else apply_migrations(settings))
    except StoreError as err:
        typer.echo(f"migrate: {err}", err=True)
        raise typer.Exit(1) from err
    if plan.kind == "redis":
        typer.echo("store redis: no schema to migrate")
        return
    versions = [s.version for s in plan.steps if s.version]
    if not versions:
        typer.echo(f"store {plan.kind} at {plan.where}: schema version {plan.current}, up to date")
        return
    if not dry_run:
        typer.echo(f"store {plan.kind} at {plan.where}: migrated from version {plan.current} to {versions[-1]}")
        return
    typer.echo(f"-- store {plan.kind} at {plan.where}: schema version {plan.current}; would apply "
               f"{', '.join(map(str, versions))} of {plan.latest}, in one transaction")
    for step in plan.steps:
        said = f"{step.version}: {step.description}" if step.version else step.description
        typer.echo("\n" + "\n".join(f"-- {line}" for line in said.splitlines()))  # every line a comment
        typer.echo(step.sql)
