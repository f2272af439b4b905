"""Partner pushes answered past FastAPI's routing, request handling and dependencies (why: docs/benchmarks.md)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send


@dataclass(frozen=True)
class PushRoute:
    """A push route whose path holds one `{adapter_id}` segment, and how to answer a POST to it."""

    path: str  # e.g. "/api/v1/inbound/{adapter_id}/tickets"
    context_attribute: str  # where the gateway's lifespan puts the route's context on app.state
    context_type: type
    answer: Callable[[Any, str, Request], Awaitable[Response]]  # (context, adapter id, request) -> response
    _prefix: str = field(init=False, repr=False)
    _suffix: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        prefix, suffix = self.path.split("{adapter_id}")
        object.__setattr__(self, "_prefix", prefix)
        object.__setattr__(self, "_suffix", suffix)

    def adapter_of(self, path: str) -> str | None:
        """The adapter id in `path`, as the route's `{adapter_id}` (one segment) would match it; else None."""
        if not (path.startswith(self._prefix) and path.endswith(self._suffix)):
            return None
        adapter_id = path[len(self._prefix):len(path) - len(self._suffix)]
        return adapter_id if adapter_id and "/" not in adapter_id else None


class PushFastPath:
    """ASGI middleware answering POSTs to the given push routes itself. Install it inside BodyLimitMiddleware,
    which bounds the time a body may take to arrive.

    The FastAPI routes stay: they document the pushes in the OpenAPI schema, answer them the same way where this
    middleware is not installed, and take every request it does not (another method, a trailing slash, an app
    mounted under a root path, a gateway not yet started). It reads its context from app.state as is, without
    FastAPI's dependencies."""

    def __init__(self, app: ASGIApp, routes: Sequence[PushRoute]) -> None:
        self.app = app
        self.routes = tuple(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path") and "app" in scope:
            for route in self.routes:
                adapter_id = route.adapter_of(scope["path"])
                if adapter_id is None:
                    continue
                context = getattr(scope["app"].state, route.context_attribute, None)
                if isinstance(context, route.context_type):
                    response = await route.answer(context, adapter_id, Request(scope, receive))
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)
