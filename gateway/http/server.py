"""The gateway's uvicorn server: once started, what the start built leaves the garbage collector's full collections."""

from __future__ import annotations

import gc
import socket

import uvicorn


class GatewayServer(uvicorn.Server):
    """uvicorn's server, freezing the objects the start built once it has started (`gc.freeze`).

    The start builds about 155,000 objects the process keeps for its life (settings, mapping specs, code tables,
    routes, the app); every full collection walked them all, about 70 ms each (in process, five in 8,500 pushes:
    about 40 µs a push). Collected once, then frozen, they are passed over. Only the serving process
    does this: a process building many apps (the tests) would keep each one's objects for good."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if not self.should_exit:
            gc.collect()
            gc.freeze()
