"""The running gateway's error root: what it raises for a caller to act on derives from GatewayError."""

from __future__ import annotations


class GatewayError(Exception):
    """Something the running gateway cannot do, said so that its caller can act on it.

    Beneath it: the store's errors (gateway.store.errors), configuration, intake, status and ops errors.
    Errors from the layers below keep their own roots (adapters.errors, mapping.errors, contracts.errors)."""


class StartupRefused(GatewayError):
    """The gateway cannot start with what it was given (its store unreachable or refusing it, a configuration the
    store cannot honour); said in one log line naming the reason, and the process ends."""
