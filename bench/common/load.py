"""A small HTTP/1.1 load generator on raw asyncio streams (keep-alive, Content-Length or chunked answers).

It costs far less CPU per request than an HTTP client library, so on a 2-core machine most of the
machine is left to the server under test. Only loopback targets are accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

LOOPBACK = ("127.0.0.1", "localhost", "::1")

# Makes the i-th request: (path, headers, body). Called on the load generator's loop, just before sending.
RequestFactory = Callable[[int], tuple[str, dict[str, str], bytes]]


def check_loopback(host: str) -> None:
    if host not in LOOPBACK:
        raise SystemExit(f"load generators only target loopback, not {host!r}")


def encode_request(host: str, port: int, path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", f"Content-Length: {len(body)}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One response: its status and body (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = -1
    chunked = False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        return status, b"".join(parts)
    return status, await reader.readexactly(max(length, 0))


@dataclass
class LoadResult:
    """What one load round measured."""

    seconds: float
    latencies: list[float] = field(default_factory=list)  # seconds, of completed requests in the window
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0  # connection failures
    cpu: float = 0.0  # CPU seconds the server process used during the round, when measured

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def p50_ms(self) -> float:
        return self.percentile(0.50) * 1000

    @property
    def p99_ms(self) -> float:
        return self.percentile(0.99) * 1000

    def merge(self, other: LoadResult) -> LoadResult:
        return LoadResult(self.seconds + other.seconds, self.latencies + other.latencies,
                          self.statuses + other.statuses, self.errors + other.errors, self.cpu + other.cpu)

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu / self.completed * 1000 if self.completed else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


class Counter_:
    """A request counter shared by the connections of one round (each request gets a distinct index)."""

    def __init__(self, start: int) -> None:
        self.next = start

    def take(self) -> int:
        value = self.next
        self.next += 1
        return value


async def closed_loop(host: str, port: int, make: RequestFactory, *, connections: int, seconds: float,
                      start_index: int = 0, expect: tuple[int, ...] = (200, 201, 202)) -> tuple[LoadResult, int]:
    """`connections` keep-alive connections, each sending its next request as soon as the last is answered,
    for `seconds`. Returns the result and the next unused request index. Unexpected statuses are counted
    (and still timed); a result with any is reported by the caller."""
    check_loopback(host)
    counter = Counter_(start_index)
    result = LoadResult(seconds=seconds)
    deadline = time.perf_counter() + seconds

    async def one_connection() -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            result.errors += 1
            return
        try:
            while time.perf_counter() < deadline:
                path, headers, body = make(counter.take())
                request = encode_request(host, port, path, headers, body)
                started = time.perf_counter()
                writer.write(request)
                status, _ = await read_response(reader)
                ended = time.perf_counter()
                if ended <= deadline:
                    result.latencies.append(ended - started)
                    result.statuses[status] += 1
        except (OSError, asyncio.IncompleteReadError):
            result.errors += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(one_connection() for _ in range(connections)))
    result.seconds = min(time.perf_counter() - started, seconds)
    unexpected = {s: n for s, n in result.statuses.items() if s not in expect}
    if unexpected:
        print(f"  warning: unexpected statuses {unexpected}", flush=True)
    return result, counter.next


async def open_loop(host: str, port: int, make: RequestFactory, *, rate: float, seconds: float,
                    connections: int = 32, start_index: int = 0,
                    on_status: Callable[[int, int, bytes], None] | None = None) -> LoadResult:
    """Requests at a fixed `rate` for `seconds` (steady load whatever the server does), spread over up to
    `connections` keep-alive connections; a request that finds every connection busy waits for one.
    `on_status(index, status, body)` sees every answer."""
    check_loopback(host)
    result = LoadResult(seconds=seconds)
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(None)  # opened on first use
    tasks: set[asyncio.Task[None]] = set()

    async def one(index: int) -> None:
        conn = await pool.get()
        try:
            if conn is None:
                conn = await asyncio.open_connection(host, port)
            reader, writer = conn
            path, headers, body = make(index)
            started = time.perf_counter()
            writer.write(encode_request(host, port, path, headers, body))
            status, answer = await read_response(reader)
            result.latencies.append(time.perf_counter() - started)
            result.statuses[status] += 1
            if on_status is not None:
                on_status(index, status, answer)
        except (OSError, asyncio.IncompleteReadError):
            result.errors += 1
            if conn is not None:
                conn[1].close()
            conn = None
        finally:
            pool.put_nowait(conn)

    begin = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = begin + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(start_index + i))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    while not pool.empty():
        conn = pool.get_nowait()
        if conn is not None:
            conn[1].close()
    result.seconds = time.perf_counter() - begin
    return result
