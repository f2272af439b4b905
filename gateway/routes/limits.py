"""Reading a request body within a size limit, refusing oversize bodies before and while reading."""

from __future__ import annotations

from fastapi import Request


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
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HttpRefusal(413, "payload_too_large", f"the body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
