"""Senders put one claimed delivery on the wire; a registry maps a destination's sender kind to one."""

from __future__ import annotations

import asyncio
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, ValidationError

from adapters.destination import DestinationConfig
from adapters.errors import AdapterError
from adapters.wire.results import ErrorClass, SendResult, http_error_class, parse_retry_after
from adapters.wire.transport import delivery_transport
from contracts.delivery import RESPONSE_BODY_LIMIT, ClaimedDelivery

IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "hotline-interop-gateway"


@runtime_checkable
class Sender(Protocol):
    """Makes one attempt at one delivery; never raises for a failed send, returns it as a SendResult."""

    async def send(self, claim: ClaimedDelivery) -> SendResult: ...

    async def aclose(self) -> None: ...


# Extra headers computed per attempt, e.g. a Standard Webhooks signature whose timestamp must be fresh.
HeaderHook = Callable[[ClaimedDelivery, datetime], Mapping[str, str]]
SenderFactory = Callable[[DestinationConfig], Sender]


def truncate_body(raw: bytes) -> str:
    """A response body as recorded with an attempt: decoded leniently, at most 16 KB of UTF-8."""
    text = raw[:RESPONSE_BODY_LIMIT].decode("utf-8", errors="replace")
    # A replacement character takes 3 bytes where the bad byte took 1: cut again on a character boundary.
    return text.encode("utf-8")[:RESPONSE_BODY_LIMIT].decode("utf-8", errors="ignore")


def error_class_of(exc: BaseException) -> str:
    """The stable error class of a failed request."""
    if isinstance(exc, httpx.ConnectTimeout):
        return ErrorClass.CONNECT_TIMEOUT
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return ErrorClass.TIMEOUT
    if isinstance(exc, httpx.ConnectError):
        return ErrorClass.CONNECT_ERROR
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return ErrorClass.CONNECTION_DROPPED
    if isinstance(exc, httpx.TransportError):
        return ErrorClass.NETWORK_ERROR
    return ErrorClass.SENDER_ERROR


class SenderConfigError(AdapterError, ValueError):
    """A destination no sender can be built for: an unknown sender kind, or options its kind cannot use."""


class HttpOptions(BaseModel):
    """`options:` of a destination with `sender: http`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["POST", "PUT", "PATCH"] = "POST"
    verify: bool | str = True  # TLS: verify against the system CAs, a CA bundle file, or (never in production) not
    trust_env: bool = False  # use HTTP(S)_PROXY and friends from the environment


class HttpSender:
    """Sends the delivery body to the destination URL (POST by default); redirects are not followed."""

    def __init__(self, destination: DestinationConfig, *, header_hooks: Sequence[HeaderHook] = ()) -> None:
        if destination.url is None:
            raise SenderConfigError(f"destination {destination.name}: the http sender needs a url")
        try:
            self.options = HttpOptions.model_validate(destination.options)
        except ValidationError as err:
            raise SenderConfigError(f"destination {destination.name}: options: {err}") from err
        self.destination = destination
        self.url = httpx.URL(str(destination.url))
        self._hooks = tuple(header_hooks)
        timeout = destination.timeout
        self._timeout = httpx.Timeout(timeout.total, connect=timeout.connect).as_dict()
        self._headers = httpx.Headers({"User-Agent": USER_AGENT, "Accept": "*/*", **destination.headers})
        # The transport is called directly: a delivery needs none of the client's layers (redirects are not
        # followed, credentials are headers, and a destination's Set-Cookie is not kept), and they cost a
        # fifth of the CPU of a send.
        self._transport = delivery_transport(
            limits=httpx.Limits(max_connections=destination.concurrency,
                                max_keepalive_connections=destination.concurrency),
            verify=self.options.verify, trust_env=self.options.trust_env,
            proxy=environment_proxy(str(self.url)) if self.options.trust_env else None)

    async def send(self, claim: ClaimedDelivery) -> SendResult:
        headers = self._headers.copy()  # case-insensitive: later sources win
        headers.update(claim.headers)
        headers["Content-Type"] = claim.content_type
        headers[IDEMPOTENCY_HEADER] = claim.idempotency_key
        for hook in self._hooks:
            headers.update(hook(claim, datetime.now(UTC)))
        started = time.monotonic()
        try:
            # httpx's timeouts bound each read and write; the destination's total bounds the whole exchange.
            async with asyncio.timeout(self.destination.timeout.total):
                request = httpx.Request(self.options.method, self.url, content=claim.body, headers=headers,
                                        extensions={"timeout": self._timeout})
                response = await self._transport.handle_async_request(request)
                response.request = request
                try:
                    raw = await _read_limited(response, RESPONSE_BODY_LIMIT)
                finally:
                    await response.aclose()
        except Exception as exc:  # every failure becomes a recorded attempt, never a crashed lane
            return SendResult(status_code=None, error_class=error_class_of(exc),
                              body=truncate_body(f"{type(exc).__name__}: {exc}".encode()),
                              duration=time.monotonic() - started)
        code = response.status_code
        return SendResult(
            status_code=code,
            body=truncate_body(raw),
            error_class=None if 200 <= code < 300 else http_error_class(code),
            retry_after=parse_retry_after(response.headers.get("Retry-After"), datetime.now(UTC)),
            duration=time.monotonic() - started,
            signature_headers=_signature_headers(response.headers),
        )

    async def aclose(self) -> None:
        await self._transport.aclose()


_SIGNATURE_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _signature_headers(headers: httpx.Headers) -> dict[str, str]:
    """The Standard Webhooks headers of a signed answer; empty for an unsigned one (most receivers)."""
    if "webhook-signature" not in headers:
        return {}
    return {name: headers[name] for name in _SIGNATURE_HEADERS if name in headers}


def environment_proxy(url: str) -> str | None:
    """The proxy that HTTP(S)_PROXY / ALL_PROXY name for `url`, unless NO_PROXY exempts its host."""
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    proxies = urllib.request.getproxies_environment()
    return proxies.get(parts.scheme) or proxies.get("all")


async def _read_limited(response: httpx.Response, limit: int) -> bytes:
    # A receiver may answer with megabytes; only the first 16 KB are kept, the rest is not read.
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    return b"".join(chunks)


_KINDS: dict[str, SenderFactory] = {"http": HttpSender}


def register_sender_kind(kind: str, factory: SenderFactory, *, replace: bool = False) -> None:
    """Make a sender kind available to destinations (`sender: <kind>`), e.g. `soap` or `webhook`."""
    if kind in _KINDS and not replace:
        raise ValueError(f"sender kind {kind!r} is already registered")
    _KINDS[kind] = factory


def sender_kinds() -> tuple[str, ...]:
    return tuple(sorted(_KINDS))


def build_sender(destination: DestinationConfig) -> Sender:
    """The sender for a destination, from its registered kind."""
    factory = _KINDS.get(destination.sender)
    if factory is None:
        raise SenderConfigError(f"destination {destination.name}: unknown sender kind {destination.sender!r}; "
                                f"known: {', '.join(sender_kinds())}")
    return factory(destination)
