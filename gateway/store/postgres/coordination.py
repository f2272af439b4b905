"""The PostgreSQL store's small coordination records: pollers' cursors, named locks and SOAP nonces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.store.postgres.connection import Connections


async def get_cursor(db: Connections, adapter_id: str) -> str | None:
    found = await db.fetchval("SELECT cursor FROM cursors WHERE adapter_id = $1", adapter_id)
    return str(found) if found is not None else None


async def set_cursor(db: Connections, adapter_id: str, cursor: str) -> None:
    await db.execute(
        "INSERT INTO cursors (adapter_id, cursor, updated_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (adapter_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
        adapter_id, cursor, datetime.now(UTC))


async def try_lock(db: Connections, name: str, owner: str, ttl_seconds: float) -> bool:
    """Take the lock, or renew it for its owner; False while another owner holds it unexpired."""
    now = datetime.now(UTC)
    row = await db.fetchrow(
        "INSERT INTO locks (name, owner, expires_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
        " WHERE locks.owner = excluded.owner OR locks.expires_at <= $4 RETURNING owner",
        name, owner, now + timedelta(seconds=ttl_seconds), now)
    return row is not None


async def lock_holder(db: Connections, name: str) -> str | None:
    found = await db.fetchval("SELECT owner FROM locks WHERE name = $1 AND expires_at > $2", name, datetime.now(UTC))
    return str(found) if found is not None else None


async def take_over_lock(db: Connections, name: str, stale_owner: str, owner: str, ttl_seconds: float) -> bool:
    """Give the lock to `owner` if `stale_owner` still holds it (one statement: one winner)."""
    status = await db.execute("UPDATE locks SET owner = $3, expires_at = $4 WHERE name = $1 AND owner = $2",
                              name, stale_owner, owner, datetime.now(UTC) + timedelta(seconds=ttl_seconds))
    return status == "UPDATE 1"


async def release_lock(db: Connections, name: str, owner: str) -> None:
    await db.execute("DELETE FROM locks WHERE name = $1 AND owner = $2", name, owner)


async def remember_nonce(db: Connections, scope: str, nonce: str, ttl_seconds: float) -> bool:
    """True the first time a nonce is seen within its time to live."""
    now = datetime.now(UTC)
    row = await db.fetchrow(
        "INSERT INTO nonces (scope, nonce, expires_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (scope, nonce) DO UPDATE SET expires_at = excluded.expires_at"
        " WHERE nonces.expires_at <= $4 RETURNING 1",
        scope, nonce, now + timedelta(seconds=ttl_seconds), now)
    return row is not None
