"""Reading a request body within a size limit, refusing oversize bodies before and while reading."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from adapters.wire.envelope import SoapFault, content_type
from gateway.errors import GatewayError
from gateway.http.faults import fault_body

MAX_HEADERS = 100
MAX_HEADER_BYTES = 16 * 1024  # what h11, uvicorn's default parser, allows for the whole head


class HttpRefusal(GatewayError):
    """A request refused with a status, a stable error code and a sentence saying why: in Chinese for the partner
    (`zh`, the answer's `message`) and in English for logs (`message_en`), as the ops API's refusals say it."""

    def __init__(self, status: int, error: str, message_en: str, headers: dict[str, str] | None = None, *,
                 zh: str) -> None:
        super().__init__(message_en)
        self.status = status
        self.error = error
        self.message = zh
        self.message_en = message_en
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The JSON answer: `{"error", "message", "message_en"}`."""
        return {"error": self.error, "message": self.message, "message_en": self.message_en}

    def fault(self) -> SoapFault:
        """The same refusal to a SOAP caller: a Client Fault with this HTTP status, the error code beginning it."""
        return SoapFault.client(f"{self.error}: {self.message_en}", zh=f"{self.error}: {self.message}",
                                http_status=self.status)


def refusal_response(refusal: HttpRefusal, **extra: Any) -> JSONResponse:
    """A refusal as JSON: the stable `error` code, `message` in Chinese, `message_en`, and anything `extra`."""
    return JSONResponse({**refusal.body(), **extra}, status_code=refusal.status, headers=refusal.headers)


def framework_refusal(status: int, detail: str, headers: dict[str, str], method: str, path: str,
                      allow: list[str]) -> HttpRefusal:
    """FastAPI's and Starlette's own refusals (no such path, a method the path does not take, a body they cannot
    read) as the gateway's: a stable code and a Chinese sentence; `detail`, their English, stays the `message_en`;
    their `headers` are kept (a 405's Allow: `allow`, every method of the path)."""
    if status == 404:
        return HttpRefusal(404, "not_found", detail, headers, zh=f"没有这个地址：{path[:200]}")
    if status == 405:
        return HttpRefusal(405, "method_not_allowed", detail, {**headers, "Allow": ", ".join(allow)},
                           zh=f"此地址不接受 {method} 请求，可用的方法：{'、'.join(allow) or '无'}")
    return HttpRefusal(status, f"http_{status}", detail, headers, zh=f"请求被拒绝（HTTP {status}）：{detail}")


def check_declared_length(request: Request, limit: int) -> None:
    """Refuse at once a body whose Content-Length is malformed or over the limit."""
    raw = request.headers.get("content-length")
    if raw is None:
        return
    if not raw.strip().isdigit():
        raise HttpRefusal(400, "bad_request", f"Content-Length {raw[:20]!r} is not a number",
                          zh=f"Content-Length {raw[:20]!r} 不是数字")
    if int(raw) > limit:
        raise HttpRefusal(413, "payload_too_large", f"the body is {int(raw)} bytes; the limit is {limit} bytes",
                          zh=f"请求体有 {int(raw)} 字节，上限是 {limit} 字节")


async def read_limited(request: Request, limit: int) -> bytes:
    """The whole body, counted while reading: a chunked body has no Content-Length, and a declared one can lie."""
    check_declared_length(request, limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            chunks.append(chunk)
    except ClientDisconnect as err:  # a truncated body: the sender's fault, answered (to no one) and logged as such
        raise HttpRefusal(400, "incomplete_body", f"the connection closed after {size} bytes of the body",
                          zh=f"收到 {size} 字节请求体后连接已关闭") from err
    return b"".join(chunks)


def _too_large(limit: int) -> HttpRefusal:
    return HttpRefusal(413, "payload_too_large", f"the body exceeds the limit of {limit} bytes",
                       zh=f"请求体超过 {limit} 字节的上限")


class BodyLimitMiddleware:
    """Every request body within `limit` bytes and `timeout` seconds.

    Size: FastAPI reads a JSON or form body whole before a route's dependencies run (authentication
    included), so without this an anonymous client could make the gateway hold any amount of memory. A
    declared Content-Length over the limit is refused at once; a chunked body is counted as it arrives and the
    answer, whatever the route was about to say, becomes the 413. Paths under `exempt` are not counted here:
    their routes limit the body themselves and answer in their own format (a SOAP Fault, say).

    Time, on every path: the whole body must arrive within `timeout` seconds of the request, or the answer is
    a 408 and the connection is closed, so a client trickling its body (or stalling it) cannot hold a
    connection and its buffers open for as long as it likes. Once the body is in, the route's own time is not
    limited here.

    Headers, before anything else: at most `MAX_HEADERS` fields and `MAX_HEADER_BYTES` bytes of names and
    values, or a 431. uvicorn's default HTTP parser (h11) refuses a head over 16 KiB itself, but the standard
    stack's (httptools, what `fastapi[standard]` installs) has no such limit: with it, 20,000 headers or one of
    200 KiB reached the routes.

    A refusal is JSON, except on paths under `soap`: there it is a SOAP 1.1 Client Fault (with the same HTTP
    status), which is what a SOAP client can read.
    """

    def __init__(self, app: ASGIApp, limit: int, exempt: Iterable[str] = (), timeout: float = 30.0,
                 soap: Iterable[str] = ()) -> None:
        self.app = app
        self.limit = limit
        self.exempt = tuple(exempt)
        self.timeout = timeout
        self.soap = tuple(soap)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counted = not str(scope["path"]).startswith(self.exempt)
        as_soap = bool(self.soap) and str(scope["path"]).startswith(self.soap)
        headers = scope["headers"]
        if len(headers) > MAX_HEADERS or sum(len(name) + len(value) for name, value in headers) > MAX_HEADER_BYTES:
            await self._refuse(send, HttpRefusal(
                431, "request_header_fields_too_large", f"the request has {len(headers)} header fields; at most "
                f"{MAX_HEADERS} fields and {MAX_HEADER_BYTES} bytes of names and values are taken",
                zh=f"请求有 {len(headers)} 个头字段；最多接受 {MAX_HEADERS} 个字段、"
                   f"名称和值合计 {MAX_HEADER_BYTES} 字节"),
                as_soap=as_soap)
            return
        if counted:
            declared = dict(scope["headers"]).get(b"content-length")
            if declared is not None and (not declared.strip().isdigit() or int(declared) > self.limit):
                await self._refuse(send, _too_large(self.limit), as_soap=as_soap)
                return
        deadline = asyncio.get_running_loop().time() + self.timeout
        size = 0
        body_done = False
        refusal: HttpRefusal | None = None
        started = False

        async def guarded_receive() -> Message:
            nonlocal size, body_done, refusal
            if body_done:  # later receives wait for a disconnect, as long as the route likes
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                refusal = HttpRefusal(408, "request_timeout", f"the body did not arrive within {self.timeout:g} s",
                                      zh=f"请求体未在 {self.timeout:g} 秒内到达")
                return {"type": "http.disconnect"}  # the route stops reading; its answer is replaced below
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                size += len(message.get("body", b""))
                if counted and size > self.limit:
                    refusal = _too_large(self.limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:
                if message["type"] == "http.response.start" and not started:
                    started = True
                    await self._refuse(send, refusal, as_soap=as_soap)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if refusal is None:
                raise
            if not started:
                await self._refuse(send, refusal, as_soap=as_soap)

    @staticmethod
    async def _refuse(send: Send, refusal: HttpRefusal, *, as_soap: bool = False) -> None:
        if as_soap:
            body = fault_body(refusal.fault())
            media = content_type().encode("ascii")
        else:
            body = json.dumps(refusal.body(), ensure_ascii=False).encode("utf-8")
            media = b"application/json"
        await send({"type": "http.response.start", "status": refusal.status,
                    "headers": [(b"content-type", media), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})
