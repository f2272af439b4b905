"""The serving process freezes what its start built out of the garbage collector's full collections (gc.freeze), once
uvicorn has started the app (its lifespan run), and not before: a start that fails freezes nothing."""

from __future__ import annotations

import gc
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import uvicorn
from fastapi import FastAPI

from gateway.http.server import GatewayServer


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process builds many apps: nothing of theirs stays frozen


def app_whose_start(fails: bool, seen: list[int]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        seen.append(gc.get_freeze_count())  # nothing frozen while the app starts
        if fails:
            raise RuntimeError("the store does not answer")
        yield

    return FastAPI(lifespan=lifespan)


class OneLook(GatewayServer):
    """Serves until started, notes how many objects are frozen then, and stops."""

    frozen: int | None = None

    async def main_loop(self) -> None:
        self.frozen = gc.get_freeze_count()


async def served(app: FastAPI) -> OneLook:
    server = OneLook(uvicorn.Config(app, log_config=None, access_log=False, lifespan="on"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        await server.serve(sockets=[sock])
    return server


async def test_what_the_start_built_is_frozen_once_the_app_has_started() -> None:
    seen: list[int] = []
    server = await served(app_whose_start(False, seen))
    assert server.started and seen == [0]
    assert server.frozen is not None and server.frozen > 1000


async def test_a_start_that_fails_freezes_nothing() -> None:
    seen: list[int] = []
    with pytest.raises(SystemExit):  # uvicorn's way out of a failed start
        await served(app_whose_start(True, seen))
    assert seen == [0] and gc.get_freeze_count() == 0
