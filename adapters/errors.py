"""The adapters' error root: what an adapter or a wire helper raises for its caller derives from AdapterError."""

from __future__ import annotations


class AdapterError(Exception):
    """Something an adapter or a wire helper cannot do: configuration, credentials, a partner, a Fault, a webhook.

    Each error beneath it also keeps the builtin base it had (ValueError, LookupError, RuntimeError), so
    callers that catch those still catch it."""
