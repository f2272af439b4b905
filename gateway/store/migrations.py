"""The schema migrations of the configured store, planned or applied on their own (`python main.py migrate`)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from gateway.config import GatewaySettings


@dataclass(frozen=True)
class MigrationStep:
    version: int
    description: str
    sql: str


@dataclass(frozen=True)
class MigrationPlan:
    """Where the store's schema is, the newest this gateway knows, and the steps between (the SQL each runs)."""

    kind: str
    where: str  # the database and schema, or the file; no password
    current: int
    latest: int
    steps: tuple[MigrationStep, ...]


async def plan_migrations(settings: GatewaySettings) -> MigrationPlan:
    """What `apply_migrations` would do, changing nothing; SchemaTooNew for a schema newer than this gateway."""
    if settings.store.kind == "postgres":
        return await _postgres(settings, apply=False)
    if settings.store.kind == "sqlite":
        return _sqlite(settings)
    return MigrationPlan("redis", settings.store.redis_url, 0, 0, ())


async def apply_migrations(settings: GatewaySettings) -> MigrationPlan:
    """Bring the store's schema up to the newest (what opening the store does first); the steps applied."""
    if settings.store.kind == "postgres":
        return await _postgres(settings, apply=True)
    plan = await plan_migrations(settings)
    if plan.steps:
        from gateway.store import open_store

        async with open_store(settings):  # SQLite migrates when opened
            pass
    return plan


async def _postgres(settings: GatewaySettings, *, apply: bool) -> MigrationPlan:
    import asyncpg

    from gateway.store import postgres_pool_settings
    from gateway.store.errors import StoreUnavailable
    from gateway.store.postgres.connection import redacted
    from gateway.store.postgres.schema import LATEST, check_version, migrate, pending, schema_sql, schema_version

    pool = postgres_pool_settings(settings)
    where = f"{redacted(pool.url)} schema {pool.schema}"
    try:
        conn = await asyncpg.connect(pool.url, timeout=pool.connect_timeout)
    except (OSError, asyncpg.PostgresError) as err:
        raise StoreUnavailable(f"PostgreSQL at {redacted(pool.url)} cannot be reached: {err}") from err
    try:
        current = await schema_version(conn, pool.schema)
        check_version(current, pool.schema)
        if apply:
            steps = await migrate(conn, pool.schema)
        else:
            steps = list(pending(current))
    finally:
        await conn.close()
    prologue = MigrationStep(0, "the schema and its version table", schema_sql(pool.schema))
    made = [MigrationStep(m.version, m.description, recorded_sql(m.version, m.description, m.sql)) for m in steps]
    return MigrationPlan("postgres", where, current, LATEST, (prologue, *made) if made else ())


def recorded_sql(version: int, description: str, sql: str) -> str:
    """A PostgreSQL migration's SQL as `migrate --dry-run` prints it: its statements, then the row that records it,
    the description a quoted SQL literal (a quote in it doubled), so the printed script runs as printed."""
    literal = description.replace("'", "''")
    return f"{sql.strip()}\nINSERT INTO schema_migrations (version, description) VALUES ({version}, '{literal}');"


def _sqlite(settings: GatewaySettings) -> MigrationPlan:
    from gateway.store.errors import SchemaTooNew
    from gateway.store.sqlite import MIGRATIONS

    path = settings.sqlite_path
    current = 0
    if path.exists():
        with sqlite3.connect(path) as db:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
    if current > len(MIGRATIONS):
        raise SchemaTooNew(f"{path} has schema version {current}, newer than this gateway knows ({len(MIGRATIONS)})")
    steps = tuple(MigrationStep(n, f"migration {n}", f"{script.strip()}\nPRAGMA user_version={n};")
                  for n, script in enumerate(MIGRATIONS[current:], start=current + 1))
    return MigrationPlan("sqlite", str(path), current, len(MIGRATIONS), steps)
