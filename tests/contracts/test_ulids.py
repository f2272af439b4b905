"""The gateway's ULIDs: 26 Crockford base32 characters, the creation millisecond first, random after."""

from __future__ import annotations

import time

from ulid import ULID

from contracts.ulids import new_ulid


def test_a_new_ulid_reads_back_as_a_ulid_of_now() -> None:
    before = time.time_ns() // 1_000_000
    made = new_ulid()
    after = time.time_ns() // 1_000_000
    assert len(made) == 26
    assert set(made) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    parsed = ULID.from_str(made)  # the library the gateway used before, as an independent reader
    assert str(parsed) == made
    assert before <= parsed.milliseconds <= after


def test_the_first_character_never_exceeds_seven() -> None:
    # 128 bits in 26 characters: the first holds only three, so a valid ULID starts with 0-7.
    assert all(new_ulid()[0] in "01234567" for _ in range(100))


def test_ulids_of_later_milliseconds_sort_later() -> None:
    first = new_ulid()
    moment = time.time_ns()
    while time.time_ns() // 1_000_000 == moment // 1_000_000:
        time.sleep(0.001)
    assert new_ulid() > first


def test_ulids_do_not_repeat() -> None:
    made = {new_ulid() for _ in range(10_000)}
    assert len(made) == 10_000
