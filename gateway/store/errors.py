"""The store's errors: one root, StoreError, beneath the gateway's; each keeps the builtin it always derived from."""

from __future__ import annotations

from gateway.errors import GatewayError


class StoreError(GatewayError):
    """Something the store cannot do with what it was asked; callers that need not tell the cases apart catch this."""


class LeaseLost(StoreError, RuntimeError):
    """The lease expired and was taken by another worker; the result of this attempt is not recorded."""


class ConcurrentUpdate(StoreError, RuntimeError):
    """The ticket changed since it was read; read it again and re-apply."""


class UnknownTicket(StoreError, LookupError):
    """No ticket with this id is stored."""


class UnknownQuarantine(StoreError, KeyError):
    """No quarantined payload with this id is stored."""


class PhoneKeyMismatch(StoreError, RuntimeError):
    """The store's phone index was made with another key than this gateway's."""


class StoreUnavailable(StoreError, ConnectionError):
    """The store's server cannot be reached now (down, restarting, refusing connections); retry later."""


class StoreBusy(StoreError, TimeoutError):
    """Every connection of the store's pool stayed in use for as long as a request may wait for one."""


class SchemaTooNew(StoreError, RuntimeError):
    """The database's schema was made by a newer gateway than this one; run that gateway or restore a backup."""


class StoreConfigError(StoreError, RuntimeError):
    """The store's configuration asks for something the store it reaches cannot do; the gateway does not start."""
