"""The ops layer's refusals: an OpsError says the HTTP status, a code, the field at fault and what to do."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.errors import GatewayError
from gateway.ops.access import OpsUser, Role


class OpsError(GatewayError):
    """A refusal the caller can act on: HTTP status, a stable code, the field at fault, a sentence in Chinese for
    the operator (`zh`, the answer's `message`) and in English for logs (`message_en`), details."""

    def __init__(self, status: int, code: str, message_en: str, *, zh: str, field: str | None = None,
                 errors: Sequence[dict[str, Any]] = (), retry_after: int | None = None) -> None:
        super().__init__(message_en)
        self.status = status
        self.code = code
        self.message = zh
        self.message_en = message_en
        self.field = field
        self.errors = list(errors)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str] | None:
        if self.status == 401:
            return {"WWW-Authenticate": "Bearer"}
        if self.retry_after is not None:
            return {"Retry-After": str(self.retry_after)}
        return None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message, "message_en": self.message_en}
        if self.field is not None:
            body["field"] = self.field
        if self.errors:
            body["errors"] = self.errors
        return body


def require(user: OpsUser, role: Role, what: str) -> None:
    if not user.may(role):
        raise OpsError(403, "forbidden", f"{what} needs the {role.value} role; {user.id} is {user.role.value}",
                       zh=f"{what} 需要 {role.value} 角色；{user.id} 的角色是 {user.role.value}", field="Authorization")
