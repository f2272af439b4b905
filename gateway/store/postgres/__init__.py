"""The PostgreSQL store: the store class, its pool settings and its schema's migrations."""

from __future__ import annotations

from gateway.store.postgres.connection import PoolSettings
from gateway.store.postgres.schema import LATEST, MIGRATIONS, Migration
from gateway.store.postgres.store import PostgresStore

__all__ = ["LATEST", "MIGRATIONS", "Migration", "PoolSettings", "PostgresStore"]
