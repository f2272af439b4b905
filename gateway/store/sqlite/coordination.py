"""The SQLite store's small coordination records: pollers' cursors, named locks and SOAP nonces."""

from __future__ import annotations

import sqlite3

from gateway.store.records import now_ms
from gateway.store.sqlite.executor import Executor


async def get_cursor(x: Executor, adapter_id: str) -> str | None:
    row = await x.run(x.fetchone, "SELECT cursor FROM cursors WHERE adapter_id = ?", (adapter_id,))
    return str(row[0]) if row else None


def set_cursor(adapter_id: str, cursor: str, db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO cursors (adapter_id, cursor, updated_at) VALUES (?,?,?)"
        " ON CONFLICT(adapter_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        (adapter_id, cursor, now_ms()),
    )


def try_lock(name: str, owner: str, ttl_seconds: float, db: sqlite3.Connection) -> bool:
    """Take the lock, or renew it for its owner; False while another owner holds it unexpired."""
    now = now_ms()
    row = db.execute(
        "INSERT INTO locks (name, owner, expires_at) VALUES (?,?,?)"
        " ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
        " WHERE locks.owner = excluded.owner OR locks.expires_at <= ? RETURNING owner",
        (name, owner, now + int(ttl_seconds * 1000), now),
    ).fetchone()
    return row is not None


async def lock_holder(x: Executor, name: str) -> str | None:
    row = await x.run(x.fetchone, "SELECT owner FROM locks WHERE name = ? AND expires_at > ?", (name, now_ms()))
    return str(row[0]) if row else None


def take_over_lock(name: str, stale_owner: str, owner: str, ttl_seconds: float, db: sqlite3.Connection) -> bool:
    taken = db.execute("UPDATE locks SET owner = ?, expires_at = ? WHERE name = ? AND owner = ?",
                       (owner, now_ms() + int(ttl_seconds * 1000), name, stale_owner))
    return taken.rowcount == 1


def release_lock(name: str, owner: str, db: sqlite3.Connection) -> None:
    db.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))


def remember_nonce(scope: str, nonce: str, ttl_seconds: float, db: sqlite3.Connection) -> bool:
    """True the first time a nonce is seen within its time to live."""
    now = now_ms()
    row = db.execute(
        "INSERT INTO nonces (scope, nonce, expires_at) VALUES (?,?,?)"
        " ON CONFLICT(scope, nonce) DO UPDATE SET expires_at = excluded.expires_at"
        " WHERE nonces.expires_at <= ? RETURNING 1",
        (scope, nonce, now + int(ttl_seconds * 1000), now),
    ).fetchone()
    return row is not None
