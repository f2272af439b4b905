"""Durable storage of the gateway: the store interface by role, its errors, and the factory choosing SQLite, Redis
or PostgreSQL."""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from typing import TYPE_CHECKING

from gateway.config import GatewaySettings
from gateway.store.base import (
    AlertLedger,
    AlertRecord,
    AuditEntry,
    AuditQuery,
    Coordination,
    DeliveryFilter,
    EchoStore,
    IntakeResult,
    LaneStore,
    LinkCandidate,
    LinkedIntake,
    LinkQuery,
    OnTimeCount,
    OpsLedger,
    PartnerEcho,
    QuarantinedPayload,
    QuarantineStore,
    Relinked,
    SourceNumber,
    Store,
    StoreLifecycle,
    TicketQuery,
    TicketStore,
)
from gateway.store.errors import (
    ConcurrentUpdate,
    LeaseLost,
    PhoneKeyMismatch,
    StoreConfigError,
    StoreError,
    UnknownQuarantine,
    UnknownTicket,
)
from gateway.store.phone_hash import hash_phone, load_phone_hash_key
from gateway.store.sqlite.owner import StoreFileInUse, store_file_owned

if TYPE_CHECKING:
    from gateway.store.postgres import PoolSettings

__all__ = [
    "AlertLedger",
    "AlertRecord",
    "AuditEntry",
    "AuditQuery",
    "ConcurrentUpdate",
    "Coordination",
    "DeliveryFilter",
    "EchoStore",
    "IntakeResult",
    "LaneStore",
    "LeaseLost",
    "LinkCandidate",
    "LinkQuery",
    "LinkedIntake",
    "OnTimeCount",
    "OpsLedger",
    "PartnerEcho",
    "PhoneKeyMismatch",
    "QuarantineStore",
    "QuarantinedPayload",
    "Relinked",
    "SourceNumber",
    "Store",
    "StoreConfigError",
    "StoreError",
    "StoreFileInUse",
    "StoreLifecycle",
    "TicketQuery",
    "TicketStore",
    "UnknownQuarantine",
    "UnknownTicket",
    "hash_phone",
    "open_store",
    "postgres_pool_settings",
    "serving_store",
]


def open_store(settings: GatewaySettings, *, phone_hash_key: bytes | None = None,
               redis_namespace: str = "hig") -> Store:
    """The store the settings ask for, not yet opened: `async with open_store(s) as store: …`."""
    key = phone_hash_key if phone_hash_key is not None else load_phone_hash_key(settings.resolved_data_dir)
    timeouts = settings.store.timeouts
    if settings.store.kind == "postgres":
        from gateway.store.postgres import PostgresStore

        return PostgresStore(postgres_pool_settings(settings), key)
    if settings.store.kind == "redis":
        from gateway.store.redis import RedisStore

        return RedisStore(settings.store.redis_url, key, namespace=redis_namespace,
                          connect_timeout_s=timeouts.connect_seconds, operation_timeout_s=timeouts.operation_seconds,
                          wait_aof=settings.store.redis_wait_aof)
    from gateway.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path, key, busy_timeout_s=timeouts.operation_seconds,
                       link_window_days=settings.links.window_days)


def serving_store(settings: GatewaySettings, role: str, *, gateway: bool,
                  workers: bool) -> AbstractContextManager[object]:
    """Held while a process serves the store: one gateway (`gateway`) and one set of delivery workers (`workers`)
    per SQLite file, a second refused with StoreFileInUse naming the first; Redis is shared by design."""
    stack = ExitStack()
    if settings.store.kind == "sqlite":
        with ExitStack() as taking:  # all or nothing: a refusal releases what was taken
            if gateway:
                taking.enter_context(store_file_owned(settings.sqlite_path, "gateway", role))
            if workers:
                taking.enter_context(store_file_owned(settings.sqlite_path, "workers", role))
            stack = taking.pop_all()
    return stack
def postgres_pool_settings(settings: GatewaySettings) -> PoolSettings:
    """The PostgreSQL store's connection settings from the gateway's (`store.timeouts` bound connecting and each
    statement)."""
    from gateway.store.postgres import PoolSettings

    s = settings.store
    return PoolSettings(url=s.postgres_url, schema=s.postgres_schema, size=s.postgres_pool_size,
                        acquire_timeout=s.postgres_pool_timeout_seconds, connect_timeout=s.timeouts.connect_seconds,
                        command_timeout=s.timeouts.operation_seconds)
