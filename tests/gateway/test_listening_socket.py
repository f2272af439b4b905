"""The socket `python main.py serve` binds itself (to say "port in use" in one line) must give the connections it
accepts what uvicorn's own would have: Nagle off. With it on, every small answer waited for the client's delayed
ACK (about 40 ms), and REST intake fell to a third of its rate."""

from __future__ import annotations

import asyncio
import socket

from gateway.cli import listening


async def test_connections_accepted_on_the_serve_socket_have_nagle_turned_off() -> None:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            sock = transport.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    with listening("127.0.0.1", 0) as sock:
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        port = sock.getsockname()[1]
        async with server:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            nodelay = await asyncio.wait_for(accepted, 10)
            writer.close()

    assert nodelay != 0
