"""`hig backup` / `hig restore`: the embedded store and its phone-hash key, to a folder and back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from gateway.config import ConfigError, GatewaySettings, load_settings

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="gateway.yaml (default: config/gateway.yaml)")
]

BACKED_UP_BY = {  # how the stores `hig backup` does not copy are backed up
    "redis": "Redis itself (an RDB snapshot or a copy of its AOF directory: docs/deployment.md)",
    "postgres": "PostgreSQL's own tools (pg_dump, or base backups with WAL archiving)",
}


def _sqlite_settings(config: Path | None) -> GatewaySettings:
    try:
        settings = load_settings(config)
    except ConfigError as err:
        typer.echo(f"configuration error:\n{err}", err=True)
        raise typer.Exit(2) from err
    if settings.store.kind != "sqlite":
        kind = settings.store.kind
        typer.echo(f"the store is {kind}, not SQLite: back it up with {BACKED_UP_BY[kind]}; keep HIG_PHONE_HASH_KEY "
                   "with it", err=True)
        raise typer.Exit(2)
    return settings


def backup_command(folder: Annotated[Path, typer.Argument(help="a new (or empty) folder for this backup")],
                   config: ConfigOption = None) -> None:
    """Copy the SQLite store (online: the gateway may be running) and its phone-hash key into FOLDER."""
    from gateway.store.phone_hash import load_phone_hash_key
    from gateway.store.sqlite.backup import BackupError, backup

    settings = _sqlite_settings(config)
    try:
        manifest = backup(settings.sqlite_path, load_phone_hash_key(settings.resolved_data_dir), folder)
    except BackupError as err:
        typer.echo(f"backup refused: {err}", err=True)
        raise typer.Exit(1) from err
    typer.echo(json.dumps({"folder": str(folder), **manifest.__dict__}, ensure_ascii=False))


def restore_command(folder: Annotated[Path, typer.Argument(help="a folder made by `backup`")],
                    config: ConfigOption = None,
                    force: Annotated[bool, typer.Option("--force", help="replace an existing store file and key")
                                     ] = False) -> None:
    """Put a backup in place as the configured store file, with its phone-hash key; no gateway may be running."""
    from gateway.store import StoreFileInUse, serving_store
    from gateway.store.phone_hash import KEY_ENV, KEY_FILE, key_fingerprint
    from gateway.store.sqlite.backup import BackupError, restore

    settings = _sqlite_settings(config)
    try:
        with serving_store(settings, "a restore (hig restore)", gateway=True, workers=True):
            manifest = restore(folder, settings.sqlite_path, settings.resolved_data_dir / KEY_FILE, force=force)
    except (StoreFileInUse, BackupError) as err:
        typer.echo(f"restore refused: {err}", err=True)
        raise typer.Exit(1) from err
    from_env = os.environ.get(KEY_ENV)
    if from_env and key_fingerprint(from_env.encode("utf-8")) != manifest.phone_key_fingerprint:
        typer.echo(f"warning: {KEY_ENV} is set to another key than this backup's; the gateway reads the variable "
                   f"first and will refuse the restored file: unset it, or set it to the content of "
                   f"{settings.resolved_data_dir / KEY_FILE}", err=True)
    typer.echo(json.dumps({"restored": str(settings.sqlite_path), **manifest.__dict__}, ensure_ascii=False))
