"""Reading a request body within a size limit, refusing oversize bodies before and while reading."""

from __future__ import annotations

import json
from collections.abc import Iterable

from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpRefusal(Exception):
    """A request refused with a status, an error code and a sentence saying why."""

    def __init__(self, status: int, error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message
        self.headers = headers or {}


def check_declared_length(request: Request, limit: int) -> None:
    """Refuse at once a body whose Content-Length is malformed or over the limit."""
    raw = request.headers.get("content-length")
    if raw is None:
        return
    if not raw.strip().isdigit():
        raise HttpRefusal(400, "bad_request", f"Content-Length {raw[:20]!r} is not a number")
    if int(raw) > limit:
        raise HttpRefusal(413, "payload_too_large", f"the body is {int(raw)} bytes; the limit is {limit} bytes")


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, counted while reading: a chunked body has no Content-Length, and a declared one can lie."""
    check_declared_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise HttpRefusal(413, "payload_too_large", f"the body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
    except ClientDisconnect as err:  # a truncated body: the sender's fault, answered (to no one) and logged as such
        raise HttpRefusal(400, "incomplete_body", f"the connection closed after {size} bytes of the body") from err
    return b"".join(chunks)


class BodyLimitMiddleware:
    """Every request body within `limit` bytes, for the routes that do not read theirs with `read_limited`.

    FastAPI reads a JSON or form body whole before a route's dependencies run (authentication included),
    so without this an anonymous client could make the gateway hold any amount of memory. A declared
    Content-Length over the limit is refused at once; a chunked body is counted as it arrives and the
    answer, whatever the route was about to say, becomes the 413. Paths under `exempt` are left alone:
    their routes limit the body themselves and answer in their own format (a SOAP Fault, say).
    """

    def __init__(self, app: ASGIApp, limit: int, exempt: Iterable[str] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = tuple(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith(self.exempt):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.strip().isdigit() or int(declared) > self.limit):
            await self._refuse(send)
            return
        size = 0
        over = False
        started = False

        async def counting_receive() -> Message:
            nonlocal size, over
            message = await receive()
            if message["type"] == "http.request":
                size += len(message.get("body", b""))
                if size > self.limit:
                    over = True
                    return {"type": "http.disconnect"}  # the route stops reading; its answer is replaced below
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": "payload_too_large",
                           "message": f"the body exceeds the limit of {self.limit} bytes"}).encode("utf-8")
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
