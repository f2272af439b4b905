"""The one error every identifier check raises, naming the identifier, the value and the broken rule."""

from __future__ import annotations

from contracts.errors import ContractError


class IdentifierError(ContractError):
    """An identifier broke a rule of its standard; ``reason`` says which, in a sentence a user can act on.

    ``reason`` never repeats ``value``: ID and phone numbers are personal data, and the reason is what
    ends up in logs and in 4xx bodies, so whoever reports the error decides whether and how to mask it.
    """

    def __init__(self, kind: str, value: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.value = value
        self.reason = reason

    def __str__(self) -> str:
        return self.reason

    def __repr__(self) -> str:
        return f"IdentifierError(kind={self.kind!r}, reason={self.reason!r})"
