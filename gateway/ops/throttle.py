"""Failed ops sign-ins per client address: after too many in a window, that address waits before trying again.

Checking an unknown token costs a salted hash per ops user (scrypt, tens of milliseconds of CPU), so without a
limit a client could both guess tokens and keep the gateway's CPU busy. Tokens already seen to be valid are
recognised without that hash and are never throttled (gateway.ops.access.Authenticator.recognised).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

MAX_FAILURES = 10
WINDOW_SECONDS = 300.0
_MAX_CLIENTS = 10_000  # addresses remembered at once; the oldest are forgotten first


class FailureThrottle:
    """At most `max_failures` failed sign-ins per client in any `window` seconds."""

    def __init__(self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()  # sync ops routes run on FastAPI's thread pool

    def retry_after(self, client: str) -> int:
        """Whole seconds this client must wait before its next try; 0 when it may try now."""
        with self._lock:
            failures = self._recent(client)
            if failures is None or len(failures) < self.max_failures:
                return 0
            return max(1, math.ceil(failures[0] + self.window - self._clock()))

    def failed(self, client: str) -> None:
        with self._lock:
            failures = self._recent(client)
            if failures is None:
                failures = self._failures[client] = deque(maxlen=self.max_failures)
            failures.append(self._clock())
            self._failures.move_to_end(client)
            while len(self._failures) > _MAX_CLIENTS:
                self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._failures.pop(client, None)

    def _recent(self, client: str) -> deque[float] | None:
        failures = self._failures.get(client)
        if failures is None:
            return None
        horizon = self._clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if not failures:
            del self._failures[client]
            return None
        return failures
