"""Backup and restore of the embedded store: a consistent copy of the SQLite file made with SQLite's online backup
API while the gateway runs, together with the phone-hash key the file's phone index was made with."""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from gateway.store.errors import StoreError
from gateway.store.phone_hash import KEY_FILE, key_fingerprint

DB_FILE = "gateway.db"
MANIFEST = "manifest.json"
PAGES_PER_STEP = 1024  # the gateway writes between steps: a backup never holds the file for long


class BackupError(StoreError, RuntimeError):
    """A backup cannot be made or restored; the message says what to do."""


@dataclass(frozen=True)
class BackupManifest:
    """What a backup folder holds: when it was made, from which file, how much, and which key (by fingerprint)."""

    made_at: str
    source: str
    schema_version: int
    tickets: int
    deliveries: int
    phone_key_fingerprint: str


def _counts(db: sqlite3.Connection) -> tuple[int, int, int]:
    version = int(db.execute("PRAGMA user_version").fetchone()[0])
    tickets = int(db.execute("SELECT count(*) FROM tickets").fetchone()[0])
    deliveries = int(db.execute("SELECT count(*) FROM deliveries").fetchone()[0])
    return version, tickets, deliveries


def _recorded_fingerprint(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT value FROM store_facts WHERE name = 'phone_key_fingerprint'").fetchone()
    return str(row[0]) if row else None


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def backup(db_path: Path, key: bytes, folder: Path) -> BackupManifest:
    """Copy `db_path` into `folder` (new or empty) with `key` beside it, while the gateway may be writing."""
    if not db_path.is_file():
        raise BackupError(f"no store file at {db_path}: nothing to back up")
    if folder.exists() and any(folder.iterdir()):
        raise BackupError(f"{folder} is not empty: give a new folder for each backup")
    folder.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    target = sqlite3.connect(folder / DB_FILE)
    try:
        source.backup(target, pages=PAGES_PER_STEP)
        version, tickets, deliveries = _counts(target)
        recorded = _recorded_fingerprint(target)
    finally:
        target.close()
        source.close()
    fingerprint = key_fingerprint(key)
    if recorded is not None and recorded != fingerprint:
        raise BackupError(f"{db_path} was indexed with another phone-hash key than this gateway's: back it up with "
                          "the key the running gateway uses (HIG_PHONE_HASH_KEY or <data_dir>/phone-hash.key)")
    _write_private(folder / KEY_FILE, key + b"\n")
    manifest = BackupManifest(made_at=datetime.now(UTC).isoformat(timespec="seconds"), source=str(db_path),
                              schema_version=version, tickets=tickets, deliveries=deliveries,
                              phone_key_fingerprint=fingerprint)
    (folder / MANIFEST).write_text(json.dumps(manifest.__dict__, indent=2) + "\n", encoding="utf-8")
    return manifest


def restore(folder: Path, db_path: Path, key_path: Path, *, force: bool = False) -> BackupManifest:
    """Put a backup made by `backup` in place: the store file at `db_path`, its key at `key_path`. Refuses to
    overwrite a store file or a different key unless `force`; the caller holds the store file (no gateway runs)."""
    try:
        manifest = BackupManifest(**json.loads((folder / MANIFEST).read_text(encoding="utf-8")))
        key = (folder / KEY_FILE).read_bytes().strip()
    except (OSError, ValueError, TypeError) as err:
        raise BackupError(f"{folder} is not a gateway backup (manifest.json, {KEY_FILE}, {DB_FILE}): {err}") from err
    if key_fingerprint(key) != manifest.phone_key_fingerprint:
        raise BackupError(f"{folder / KEY_FILE} is not the key this backup was made with")
    source = sqlite3.connect(f"file:{folder / DB_FILE}?mode=ro", uri=True)
    try:
        try:
            checked = source.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.DatabaseError as err:  # too damaged to be checked: "file is not a database"
            checked = str(err)
        if checked != "ok":
            raise BackupError(f"{folder / DB_FILE} is damaged (PRAGMA integrity_check: {checked}): use another backup")
        if db_path.exists() and not force:
            raise BackupError(f"{db_path} exists: restoring replaces it; give --force to do so")
        if key_path.exists() and key_path.read_bytes().strip() != key and not force:
            raise BackupError(f"{key_path} holds another phone-hash key: restoring replaces it; give --force")
        db_path.parent.mkdir(parents=True, exist_ok=True)
        for stale in (db_path.with_name(db_path.name + "-wal"), db_path.with_name(db_path.name + "-shm")):
            stale.unlink(missing_ok=True)  # a log of the file being replaced must not be applied to the restored one
        target = sqlite3.connect(db_path)
        try:
            source.backup(target, pages=PAGES_PER_STEP)
        finally:
            target.close()
    finally:
        source.close()
    _write_private(key_path, key + b"\n")
    return manifest
