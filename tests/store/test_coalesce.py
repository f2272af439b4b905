"""The coalescer behind the Redis store's relays: many callers' items, one flush at a time."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store.coalesce import Coalescer


class Recorder:
    def __init__(self) -> None:
        self.flushes: list[list[str]] = []
        self.gate = asyncio.Event()
        self.fail_next: Exception | None = None
        self.bad_items: set[str] = set()

    async def flush(self, items: list[str]) -> list[Exception | None]:
        self.flushes.append(items)
        await self.gate.wait()
        if self.fail_next is not None:
            failure, self.fail_next = self.fail_next, None
            raise failure
        return [ValueError(item) if item in self.bad_items else None for item in items]


async def test_items_handed_in_while_a_flush_runs_go_out_together_in_the_next() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.flush)
    first = asyncio.create_task(coalescer.submit(["a"]))
    await asyncio.sleep(0)  # the first flush starts at once, with no timer
    later = [asyncio.create_task(coalescer.submit([x, x + "'"])) for x in "bcd"]
    await asyncio.sleep(0)
    assert recorder.flushes == [["a"]]
    assert not first.done()
    recorder.gate.set()
    await asyncio.gather(first, *later)
    assert recorder.flushes == [["a"], ["b", "b'", "c", "c'", "d", "d'"]]


async def test_a_failed_flush_fails_every_caller_of_its_group_and_only_them() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.flush)
    recorder.fail_next = ConnectionError("Redis went away")
    group = [asyncio.create_task(coalescer.submit([x])) for x in "ab"]
    await asyncio.sleep(0)
    after = asyncio.create_task(coalescer.submit(["c"]))
    await asyncio.sleep(0)
    recorder.gate.set()
    results = await asyncio.gather(*group, after, return_exceptions=True)
    assert [type(r) for r in results] == [ConnectionError, ConnectionError, type(None)]
    assert recorder.flushes == [["a", "b"], ["c"]]


async def test_an_item_that_fails_fails_only_the_caller_that_handed_it_in() -> None:
    recorder = Recorder()
    recorder.bad_items = {"b2"}
    coalescer = Coalescer(recorder.flush)
    callers = [asyncio.create_task(coalescer.submit(items)) for items in (["a1", "a2"], ["b1", "b2"], ["c1"])]
    await asyncio.sleep(0)
    recorder.gate.set()
    results = await asyncio.gather(*callers, return_exceptions=True)
    assert recorder.flushes == [["a1", "a2", "b1", "b2", "c1"]]  # one flush for all three callers
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError) and str(results[1]) == "b2"


async def test_a_cancelled_caller_leaves_its_items_to_be_flushed() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.flush)
    caller = asyncio.create_task(coalescer.submit(["kept"]))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    recorder.gate.set()
    await coalescer.drain()
    assert recorder.flushes == [["kept"]]


async def test_drain_waits_for_what_was_handed_in() -> None:
    recorder = Recorder()
    coalescer = Coalescer(recorder.flush)
    callers = [asyncio.create_task(coalescer.submit([x])) for x in "ab"]
    await asyncio.sleep(0)
    draining = asyncio.create_task(coalescer.drain())
    await asyncio.sleep(0.01)
    assert not draining.done()
    recorder.gate.set()
    await draining
    assert all(c.done() for c in callers)
    assert recorder.flushes == [["a", "b"]]  # both were waiting when the flush began
