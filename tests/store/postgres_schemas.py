"""Test schemas on the PostgreSQL at 127.0.0.1:5432 (trust authentication, database `test`): each test works in a
schema of its own, dropped afterwards (never the database, which others share)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg

from gateway.store.postgres import PoolSettings

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
