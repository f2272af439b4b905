"""The HTTP transport of the delivery senders: httpx's own, with a cheaper check of idle connections.

httpcore's pool asks every idle connection, on each request and response, whether the server hung up; its
asyncio backend answers through anyio at a cost per question that a busy lane pays on every delivery
(encode/httpcore#928; the figures are in docs/benchmarks.md). The stream here keeps its socket from the
first question and polls it directly; reads, writes, TLS and every other answer are the wrapped stream's.
"""

# ruff: noqa: ASYNC109 - these methods implement httpcore's interface, which names its parameter `timeout`
from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx
from httpcore._backends.base import SOCKET_OPTION
from httpcore._utils import is_socket_readable


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            if self._socket is None:
                self._socket = self._inner.get_extra_info("socket")
            return is_socket_readable(self._socket)
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: Iterable[SOCKET_OPTION] | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SOCKET_OPTION] | None = None) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def delivery_transport(*, limits: httpx.Limits, verify: bool | str, trust_env: bool,
                       proxy: str | None = None) -> httpx.AsyncHTTPTransport:
    """httpx's transport with these limits, TLS settings and proxy, its pool on the backend above."""
    transport = httpx.AsyncHTTPTransport(limits=limits, verify=verify, trust_env=trust_env, proxy=proxy)
    pool: Any = transport._pool  # httpx takes no network backend of its own (httpx 0.28, httpcore 1.0)
    if not isinstance(pool, httpcore.AsyncConnectionPool):
        raise TypeError(f"unexpected httpx pool {type(pool).__name__}; gateway/delivery/transport.py needs a look")
    pool._network_backend = _Backend(pool._network_backend)
    return transport
