"""ULIDs for the gateway's own records (tickets, deliveries, quarantine and audit entries)."""

from __future__ import annotations

import threading
import time

from ulid import ULIDGenerator

_lock = threading.Lock()
_last_millisecond = 0


def _clock_that_never_goes_back() -> int:
    """Unix milliseconds, never earlier than the last id's (a wall clock set back keeps the order)."""
    global _last_millisecond
    _last_millisecond = max(time.time_ns() // 1_000_000, _last_millisecond)
    return _last_millisecond


_generator = ULIDGenerator(clock=_clock_that_never_goes_back)


def new_ulid() -> str:
    """A new ULID as its 26 characters (python-ulid): 48 bits of Unix milliseconds, then 80 random bits, and
    monotonic within the process: every id sorts after the one made before it, in any thread, also within a
    millisecond (the random part of the last one plus one). The stores rely on it: one ticket's deliveries, enqueued
    together, go in id order.

    python-ulid's generator reads its clock before taking its lock, so two threads could see one millisecond
    before the other had finished with it and a thread's next id could sort before its last (seen in CI: the
    several-threads spec failed); the clock is read here under one lock with the generation."""
    with _lock:
        return str(_generator.generate())
