"""The gateway's own limit on request headers: the same on every HTTP stack. uvicorn's h11 refuses a head over
16 KiB before the app sees it; httptools (the standard stack) does not, so the app refuses with a 431 itself."""

from __future__ import annotations

import json
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from gateway.http.limits import MAX_HEADER_BYTES, MAX_HEADERS, BodyLimitMiddleware


async def _reached(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"reached"})


async def _call(path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    app = BodyLimitMiddleware(_reached, limit=1024, soap=("/soap",))
    sent: list[Message] = []
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "headers": headers}

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


async def test_as_many_headers_as_allowed_reach_the_route() -> None:
    headers = [(b"x-%d" % i, b"a") for i in range(MAX_HEADERS)]
    assert await _call("/healthz", headers) == (200, b"reached")


async def test_twenty_thousand_headers_are_refused_with_431_naming_the_limit() -> None:
    status, body = await _call("/healthz", [(b"x-%d" % i, b"a") for i in range(20_000)])
    assert status == 431
    answer = json.loads(body)
    assert answer["error"] == "request_header_fields_too_large" and "20000 个头字段" in answer["message"]
    assert "20000 header fields" in answer["message_en"]


async def test_one_header_of_200_kib_is_refused() -> None:
    status, body = await _call("/healthz", [(b"host", b"x"), (b"x-big", b"a" * 200_000)])
    assert status == 431 and json.loads(body)["error"] == "request_header_fields_too_large"


async def test_headers_just_over_the_byte_limit_are_refused_and_just_within_pass() -> None:
    within = [(b"x-big", b"a" * (MAX_HEADER_BYTES - len(b"x-big")))]
    over = [(b"x-big", b"a" * (MAX_HEADER_BYTES - len(b"x-big") + 1))]
    assert (await _call("/healthz", within))[0] == 200
    assert (await _call("/healthz", over))[0] == 431


async def test_a_soap_client_hears_a_soap_fault() -> None:
    status, body = await _call("/soap/province-12345-soap", [(b"x-%d" % i, b"a") for i in range(MAX_HEADERS + 1)])
    assert status == 431 and b"Fault" in body and b"request_header_fields_too_large" in body
