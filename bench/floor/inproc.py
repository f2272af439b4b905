"""CPU per push in process: N realistic pushes through the gateway's ASGI app and the fast-path floor's, no sockets.

Each push is handed to the app's ASGI callable as uvicorn would hand it (the same FastAPI middleware stack, the
same fast path), `concurrency` at a time so that the store's group commit groups as under load. What is measured
is the process's CPU (`time.process_time()`: every thread, the store's writer thread included) and the event
loop thread's alone (`time.thread_time()`) per push, after a warm-up; the log lines go through the gateway's own
masking formatter to /dev/null. No HTTP parsing or sockets: what this leaves out is the same for both.

  .venv/bin/python -m bench.floor.inproc [--kind rest|soap] [--store sqlite|redis] [--pushes 2000] [--side both]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from starlette.types import ASGIApp, Message

from bench.common import payloads
from bench.common.intake import rest_factories, soap_factories
from bench.common.load import RequestFactory
from bench.common.procs import gateway_env, redis_db
from bench.floor.server import FLOOR_CITY_PATH, FLOOR_SOAP_PATH


async def push(app: ASGIApp, path: str, headers: dict[str, str], body: bytes) -> int:
    """One POST through the app's ASGI callable; its status."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
        + [(b"content-length", str(len(body)).encode())],
    }
    sent = False
    status = 0

    async def receive() -> Message:
        nonlocal sent
        if sent:
            await asyncio.Event().wait()  # a disconnect never comes while the answer is being made
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def drive(app: ASGIApp, make: RequestFactory, *, start: int, count: int, concurrency: int
                ) -> tuple[float, float, dict[int, int]]:
    """`count` pushes, `concurrency` at a time: (process CPU s, loop thread CPU s, statuses)."""
    statuses: dict[int, int] = {}
    cpu, thread = time.process_time(), time.thread_time()
    for first in range(start, start + count, concurrency):
        batch = [make(i) for i in range(first, min(first + concurrency, start + count))]
        for status in await asyncio.gather(*(push(app, p, h, b) for p, h, b in batch)):
            statuses[status] = statuses.get(status, 0) + 1
    return time.process_time() - cpu, time.thread_time() - thread, statuses


@contextlib.asynccontextmanager
async def gateway_app(kind: str, store: str, work: Path, redis_url: str, tag: str
                      ) -> AsyncIterator[tuple[ASGIApp, RequestFactory]]:
    from gateway.app import create_app
    from gateway.config import load_settings
    from gateway.logs import configure_logging

    genv = gateway_env(work / "gateway", store=store, redis_url=redis_url)
    os.environ.update(genv.env)
    settings = load_settings()
    configure_logging(settings.logging.level, settings.logging.json_lines)
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    with Path(os.devnull).open("w") as devnull:  # noqa: ASYNC230 (opened once, before any push)
        stream = handler.setStream(devnull)
        try:
            app = create_app(settings)
            make = (rest_factories(genv.env["PARTNER_CITY12345_API_KEY"], tag)[0] if kind == "rest"
                    else soap_factories(genv.env["PARTNER_PROVINCE12345_INBOUND_PASSWORD"], tag)[0])
            async with app.router.lifespan_context(app):
                yield app, make
        finally:  # a later run in this process logs again where it logged before, not into the closed file
            handler.setStream(stream if stream is not None else sys.stderr)


@contextlib.asynccontextmanager
async def floor_app(kind: str, store: str, work: Path, redis_url: str, tag: str, *, decide: bool = False
                    ) -> AsyncIterator[tuple[ASGIApp, RequestFactory]]:
    from bench.floor.server import create_app

    key, password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    if decide:  # the gateway's configuration, as the gateway reads it
        os.environ.update(gateway_env(work / "decisions", store=store, redis_url=redis_url).env)
    app = create_app(key, password, "sqlite" if store == "sqlite" else "redis",
                     work / ("floor-deciding.db" if decide else "floor.db"), redis_url, decide=decide)
    raw = rest_factories(key, tag)[0] if kind == "rest" else soap_factories(password, tag)[0]
    path = FLOOR_CITY_PATH if kind == "rest" else FLOOR_SOAP_PATH

    def make(i: int) -> tuple[str, dict[str, str], bytes]:
        _, headers, body = raw(i)
        return path, headers, body

    async with app.router.lifespan_context(app):
        yield app, make


def deciding_floor_app(kind: str, store: str, work: Path, redis_url: str, tag: str
                       ) -> contextlib.AbstractAsyncContextManager[tuple[ASGIApp, RequestFactory]]:
    return floor_app(kind, store, work, redis_url, tag, decide=True)


Opener = Callable[[str, str, Path, str, str], contextlib.AbstractAsyncContextManager[tuple[ASGIApp, RequestFactory]]]


async def measure(name: str, opener: Opener, args: argparse.Namespace, work: Path) -> float:
    tag = payloads.run_tag()
    async with opener(args.kind, args.store, work, args.redis_url, tag) as (app, make):
        await drive(app, make, start=0, count=args.warmup, concurrency=args.concurrency)
        cpu, thread, statuses = await drive(app, make, start=args.warmup, count=args.pushes,
                                            concurrency=args.concurrency)
    per = cpu / args.pushes * 1e6
    print(f"{name:8} {args.kind} {args.store}: {per:7.0f} µs CPU per push (loop thread "
          f"{thread / args.pushes * 1e6:5.0f} µs), {args.pushes} pushes x{args.concurrency}, {statuses}", flush=True)
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("rest", "soap"), default="rest")
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--pushes", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--side", choices=("both", "gateway", "floor", "deciding"), default="both",
                        help="both: the floor, the floor deciding as the gateway must, and the gateway")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-inproc-") as tmp, \
            redis_db(args.redis_url) if args.store == "redis" else contextlib.nullcontext():
        work = Path(tmp)
        floor = asyncio.run(measure("floor", floor_app, args, work)) if args.side in ("both", "floor") else None
        deciding = (asyncio.run(measure("deciding", deciding_floor_app, args, work))
                    if args.side in ("both", "deciding") else None)
        gateway = asyncio.run(measure("gateway", gateway_app, args, work)) if args.side in ("both", "gateway") else None
        if floor and deciding:
            print(f"deciding floor / floor CPU per push: {deciding / floor:.2f} "
                  f"(floor / deciding {floor / deciding:.2f})")
        if floor and gateway:
            print(f"gateway / floor CPU per push: {gateway / floor:.2f} (floor / gateway {floor / gateway:.2f})")


if __name__ == "__main__":
    main()
