"""Test schemas on the PostgreSQL at 127.0.0.1:5432 (trust authentication, database `test`): each test works in a
schema of its own, dropped afterwards (never the database, which others share).

Migrating a schema and dropping it take about a second a test on a loaded machine, so the store specifications
`take_schema` and `give_back_schema` instead: a schema given back is emptied (every table but schema_migrations
truncated, identities restarted) and handed to the next test, which finds what a freshly migrated schema holds.
One whose objects differ from a freshly migrated schema's (a test changed its definition) is dropped, not reused;
the spares are dropped when the test process ends.
"""

from __future__ import annotations

import asyncio
import atexit
import uuid

import asyncpg

from gateway.store.postgres import PoolSettings
from gateway.store.postgres.schema import migrate

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def new_schema(prefix: str = "test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def pool_settings(schema: str, **overrides: float) -> PoolSettings:
    return PoolSettings(url=POSTGRES_URL, schema=schema, **overrides)  # type: ignore[arg-type]


async def drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def drop_schema_now(schema: str) -> None:
    """From synchronous code (a subprocess test's clean-up)."""
    asyncio.run(drop_schema(schema))


# Every object of a schema, column types included: what a spare must have in common with a freshly migrated one.
_OBJECTS = """
SELECT 'relation ' || c.relname || ' ' || c.relkind::text FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1
UNION ALL SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
  || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL SELECT 'trigger ' || c.relname || '.' || t.tgname || ' ' || t.tgenabled::text FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = $1 AND NOT t.tgisinternal
UNION ALL SELECT 'function ' || p.proname || ' ' || md5(p.prosrc) FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1
"""

_spares: list[str] = []
_migrated: list[frozenset[str]] = []  # the objects of a freshly migrated schema, once known


async def _objects(conn: asyncpg.Connection, schema: str) -> frozenset[str]:
    found = {str(row[0]) for row in await conn.fetch(_OBJECTS, schema)}
    version = await conn.fetchval(f'SELECT max(version) FROM "{schema}".schema_migrations')  # noqa: S608
    return frozenset({*found, f"version {version}"})


def take_schema(prefix: str = "test") -> str:
    """A schema for one test: an emptied one a finished test gave back, or a new name the store migrates at open."""
    return _spares.pop() if _spares else new_schema(prefix)


async def give_back_schema(schema: str) -> None:
    """After a test: empty the schema for the next one, or drop it if its objects are not a migrated schema's."""
    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        if not _migrated:
            reference = new_schema("test_reference")
            await migrate(conn, reference)
            _migrated.append(await _objects(conn, reference))
            await conn.execute(f'DROP SCHEMA "{reference}" CASCADE')
        tables = [str(row[0]) for row in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1 AND tablename <> 'schema_migrations'", schema)]
        exists = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_migrations')
        if exists is None or await _objects(conn, schema) != _migrated[0]:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            return
        emptied = ", ".join(f'"{schema}"."{table}"' for table in tables)
        await conn.execute(f"TRUNCATE {emptied} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()
    _spares.append(schema)


@atexit.register
def _drop_spares() -> None:
    async def drop_all() -> None:
        for schema in _spares:
            await drop_schema(schema)

    if _spares:
        asyncio.run(drop_all())
