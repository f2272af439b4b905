"""The embedded SQLite store: the store class, its schema's migrations and the threads its writes run on."""

from __future__ import annotations

from gateway.store.sqlite.executor import StoreThread
from gateway.store.sqlite.loop_writer import LoopWriter, WriterBusy
from gateway.store.sqlite.schema import MIGRATIONS
from gateway.store.sqlite.store import SqliteStore

__all__ = ["MIGRATIONS", "LoopWriter", "SqliteStore", "StoreThread", "WriterBusy"]
