"""The gateway's ULIDs: 26 Crockford base32 characters, the creation millisecond first, random after."""

from __future__ import annotations

import itertools
import threading
import time

import pytest
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


def test_ulids_made_one_after_another_sort_in_that_order_within_a_millisecond_too() -> None:
    # Thousands in a row share milliseconds; each must still sort after the one before (the stores order one
    # ticket's deliveries by id), as python-ulid's own ids do.
    made = [new_ulid() for _ in range(20_000)]
    assert len({ULID.from_str(m).milliseconds for m in made}) < len(made)  # some did share a millisecond
    assert all(a < b for a, b in itertools.pairwise(made))
    library = [str(ULID()) for _ in range(20_000)]  # the library the gateway used before, for the same property
    assert all(a < b for a, b in itertools.pairwise(library))


def test_ulids_made_by_several_threads_at_once_never_repeat_and_each_thread_sees_them_rise() -> None:
    made: dict[int, list[str]] = {}

    def make(n: int) -> None:
        made[n] = [new_ulid() for _ in range(5_000)]

    threads = [threading.Thread(target=make, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = [u for ids in made.values() for u in ids]
    assert len(set(every)) == len(every) == 20_000
    assert all(all(a < b for a, b in itertools.pairwise(ids)) for ids in made.values())


def test_a_wall_clock_set_back_does_not_make_an_id_sort_before_the_last(monkeypatch: pytest.MonkeyPatch) -> None:
    first = new_ulid()
    an_hour_ago = time.time_ns() - 3_600 * 1_000_000_000
    monkeypatch.setattr(time, "time_ns", lambda: an_hour_ago)
    later = [new_ulid() for _ in range(100)]
    assert all(a < b for a, b in itertools.pairwise([first, *later]))
