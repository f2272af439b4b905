"""Durable storage of the gateway: the store interface by role, its errors, and the factory choosing SQLite or Redis."""

from __future__ import annotations

from gateway.config import GatewaySettings
from gateway.store.base import (
    AuditEntry,
    AuditQuery,
    Coordination,
    DeliveryFilter,
    IntakeResult,
    LaneStore,
    LinkQuery,
    OpsLedger,
    QuarantinedPayload,
    QuarantineStore,
    Store,
    StoreLifecycle,
    TicketQuery,
    TicketStore,
)
from gateway.store.errors import (
    ConcurrentUpdate,
    LeaseLost,
    PhoneKeyMismatch,
    StoreError,
    UnknownQuarantine,
    UnknownTicket,
)
from gateway.store.phone_hash import hash_phone, load_phone_hash_key

__all__ = [
    "AuditEntry",
    "AuditQuery",
    "ConcurrentUpdate",
    "Coordination",
    "DeliveryFilter",
    "IntakeResult",
    "LaneStore",
    "LeaseLost",
    "LinkQuery",
    "OpsLedger",
    "PhoneKeyMismatch",
    "QuarantineStore",
    "QuarantinedPayload",
    "Store",
    "StoreError",
    "StoreLifecycle",
    "TicketQuery",
    "TicketStore",
    "UnknownQuarantine",
    "UnknownTicket",
    "hash_phone",
    "open_store",
]


def open_store(settings: GatewaySettings, *, phone_hash_key: bytes | None = None,
               redis_namespace: str = "hig") -> Store:
    """The store the settings ask for, not yet opened: `async with open_store(s) as store: …`."""
    key = phone_hash_key if phone_hash_key is not None else load_phone_hash_key(settings.resolved_data_dir)
    if settings.store.kind == "redis":
        from gateway.store.redis import RedisStore

        return RedisStore(settings.store.redis_url, key, namespace=redis_namespace)
    from gateway.store.sqlite import SqliteStore

    return SqliteStore(settings.sqlite_path, key)
