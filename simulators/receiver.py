"""A real HTTP receiver on loopback that records each Idempotency-Key and fails on purpose, for tests and demos."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

CONTROL_PREFIX = "/_receiver/"
_MAX_HEAD = 64 * 1024


@dataclass(frozen=True)
class Action:
    """How to answer one request: a status after a delay, or a dropped connection."""

    status: int = 200
    delay: float = 0.0  # seconds before answering (or dropping); longer than a client's timeout = a timeout
    drop: bool = False  # close the connection without any answer
    retry_after: str | None = None  # a Retry-After header: seconds or an HTTP date
    body: str = '{"ok": true}'
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action:
        return cls(status=int(data.get("status", 200)), delay=float(data.get("delay", 0.0)),
                   drop=bool(data.get("drop", False)),
                   retry_after=None if data.get("retry_after") is None else str(data["retry_after"]),
                   body=str(data.get("body", '{"ok": true}')),
                   headers={str(k): str(v) for k, v in dict(data.get("headers", {})).items()})


OK = Action()


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as it arrived, and how it was answered (None: dropped, or the client left first)."""

    key: str | None
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    received_at: datetime
    monotonic: float
    answered: int | None = None


@dataclass(frozen=True)
class ReceiverStats:
    total: int  # requests received (control requests not counted)
    distinct_keys: int
    keys_received_twice_or_more: int
    max_in_flight: int  # requests being handled at once, any key
    max_in_flight_per_key: int  # the most requests with one key handled at once: 1 unless sent twice at once
    answered: dict[str, int]  # by status code; "none" for dropped or abandoned


class Receiver:
    """The receiver's state and HTTP handling; runs on one event loop (see ReceiverThread for tests)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.reset()

    # -- behaviour -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every request and every scripted failure."""
        with self._lock:
            self._requests: list[ReceivedRequest] = []
            self._counts: Counter[str] = Counter()
            self._in_flight: Counter[str] = Counter()
            self._max_per_key: Counter[str] = Counter()
            self._in_flight_total = 0
            self._max_total = 0
            self._answered: Counter[str] = Counter()
            self._per_key: tuple[Action, ...] = ()
            self._sequence: deque[Action] = deque()
            self._default = OK
            self._outage: Action | None = None

    def script(self, *, per_key: Iterable[Action] | None = None, sequence: Iterable[Action] | None = None,
               default: Action | None = None, outage: Action | bool | None = False) -> None:
        """Set how requests are answered, in this order of precedence:

        `outage` answers every request while set (None lifts it); the n-th request carrying one key
        gets `per_key[n]`; otherwise the next of `sequence` (each used once); otherwise `default`.
        """
        with self._lock:
            if per_key is not None:
                self._per_key = tuple(per_key)
            if sequence is not None:
                self._sequence = deque(sequence)
            if default is not None:
                self._default = default
            if outage is not False:
                self._outage = outage if isinstance(outage, Action) else None

    def set_outage(self, action: Action | None) -> None:
        """Answer everything with `action` (e.g. a 503) until called with None."""
        self.script(outage=action)

    def _choose(self, key: str | None) -> Action:
        if self._outage is not None:
            return self._outage
        seen = self._counts[key] - 1 if key is not None else -1
        if 0 <= seen < len(self._per_key):
            return self._per_key[seen]
        if self._sequence:
            return self._sequence.popleft()
        return self._default

    # -- what was received -----------------------------------------------------------------------
    def requests(self, key: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self._requests if key is None or r.key == key]

    def counts(self) -> Counter[str]:
        """Requests received per Idempotency-Key."""
        with self._lock:
            return Counter(self._counts)

    def stats(self) -> ReceiverStats:
        with self._lock:
            return ReceiverStats(
                total=len(self._requests),
                distinct_keys=len(self._counts),
                keys_received_twice_or_more=sum(1 for n in self._counts.values() if n > 1),
                max_in_flight=self._max_total,
                max_in_flight_per_key=max(self._max_per_key.values(), default=0),
                answered=dict(self._answered),
            )

    def wait_until(self, predicate: Callable[[Receiver], bool], timeout: float, poll: float = 0.02) -> bool:
        """Block (from another thread) until `predicate(self)` holds or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self):
                return True
            time.sleep(poll)
        return predicate(self)

    # -- server ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=_MAX_HEAD,
                                                  backlog=1024)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        if self._handlers:  # aborted connections end their handlers; a sleeping one sees the EOF
            await asyncio.wait(set(self._handlers), timeout=2)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        try:
            while await self._one_request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _one_request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Handle one request; whether the connection stays open for another."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", "").lower():
            await self._write(writer, 501, b"chunked request bodies are not supported", {}, close=True)
            return False
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if target.startswith(CONTROL_PREFIX):
            status, payload = self._control(method, target[len(CONTROL_PREFIX):], body)
            await self._write(writer, status, payload, {"Content-Type": "application/json"}, close=not keep_alive)
            return keep_alive

        key = headers.get("idempotency-key")
        with self._lock:
            if key is not None:
                self._counts[key] += 1
                self._in_flight[key] += 1
                self._max_per_key[key] = max(self._max_per_key[key], self._in_flight[key])
            self._in_flight_total += 1
            self._max_total = max(self._max_total, self._in_flight_total)
            action = self._choose(key)
            index = len(self._requests)
            self._requests.append(ReceivedRequest(key=key, method=method, path=target, headers=headers,
                                                  body=body, received_at=datetime.now(UTC),
                                                  monotonic=time.monotonic()))
        answered: int | None = None
        try:
            if action.delay > 0 and not await _sleep_unless_client_leaves(reader, action.delay):
                return False
            if action.drop:
                writer.transport.abort()
                return False
            extra = dict(action.headers)
            if action.retry_after is not None:
                extra["Retry-After"] = action.retry_after
            extra.setdefault("Content-Type", "application/json")
            await self._write(writer, action.status, action.body.encode(), extra, close=not keep_alive)
            answered = action.status
            return keep_alive
        finally:
            with self._lock:
                if key is not None:
                    self._in_flight[key] -= 1
                self._in_flight_total -= 1
                self._answered[str(answered) if answered is not None else "none"] += 1
                done = self._requests[index]
                self._requests[index] = ReceivedRequest(**{**done.__dict__, "answered": answered})

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, status: int, body: bytes, headers: dict[str, str], *,
                     close: bool) -> None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Status"
        lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}",
                 f"Connection: {'close' if close else 'keep-alive'}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        await writer.drain()

    def _control(self, method: str, command: str, body: bytes) -> tuple[int, bytes]:
        if method == "GET" and command == "stats":
            return 200, json.dumps(asdict(self.stats())).encode()
        if method == "GET" and command == "counts":
            return 200, json.dumps(dict(self.counts())).encode()
        if method == "POST" and command == "reset":
            self.reset()
            return 200, b'{"ok": true}'
        if method == "POST" and command == "script":
            data = json.loads(body or b"{}")
            outage = data.get("outage", False)
            self.script(
                per_key=[Action.from_json(a) for a in data["per_key"]] if "per_key" in data else None,
                sequence=[Action.from_json(a) for a in data["sequence"]] if "sequence" in data else None,
                default=Action.from_json(data["default"]) if "default" in data else None,
                outage=Action.from_json(outage) if isinstance(outage, dict) else (None if outage is None else False),
            )
            return 200, b'{"ok": true}'
        return 404, b'{"error": "unknown control command"}'


async def _sleep_unless_client_leaves(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Wait `seconds`; False as soon as the client closes the connection (it timed out and left)."""
    eof = asyncio.ensure_future(reader.read(1))
    try:
        done, _ = await asyncio.wait({eof}, timeout=seconds)
        return not done  # any byte or EOF before the delay ended: the client gave up on this request
    finally:
        eof.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await eof


class ReceiverThread:
    """A Receiver on its own event loop in a daemon thread: `with ReceiverThread() as rx: rx.url`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.receiver = Receiver(host, port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="receiver", daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self._loop).result(timeout=10)
        return self.receiver

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.receiver.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


def main(argv: list[str] | None = None) -> None:
    """`python -m simulators.receiver --port 8900 --fail-first 2 --fail-status 503`."""
    parser = argparse.ArgumentParser(prog="python -m simulators.receiver", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--status", type=int, default=200, help="the status of a normal answer")
    parser.add_argument("--fail-first", type=int, default=0, help="fail the first N requests of each key")
    parser.add_argument("--fail-status", type=int, default=503)
    parser.add_argument("--retry-after", default=None, help="Retry-After sent with failures")
    args = parser.parse_args(argv)

    receiver = Receiver(args.host, args.port)
    failure = Action(status=args.fail_status, delay=args.latency, retry_after=args.retry_after)
    receiver.script(per_key=[failure] * args.fail_first, default=Action(status=args.status, delay=args.latency))

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await receiver.start()
        print(json.dumps({"event": "receiver listening", "url": receiver.url,
                          "control": receiver.url + CONTROL_PREFIX.strip("/") + "/stats"}), flush=True)
        try:
            await stop.wait()
        finally:
            await receiver.stop()
            print(json.dumps({"event": "receiver stopped", **asdict(receiver.stats())}), flush=True)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
