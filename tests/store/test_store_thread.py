"""The SQLite store's thread: jobs in order on one thread, answers to the loop, a clean shutdown."""

from __future__ import annotations

import asyncio
import threading

import pytest

from gateway.store.sqlite import StoreThread


async def test_jobs_run_in_order_on_one_thread_and_answer_their_waiters() -> None:
    thread = StoreThread("test-store-thread")
    try:
        seen: list[tuple[int, str]] = []

        def job(i: int) -> int:
            seen.append((i, threading.current_thread().name))
            return i * i

        results = await asyncio.gather(*(thread.run(lambda i=i: job(i)) for i in range(20)))
        assert results == [i * i for i in range(20)]
        assert [i for i, _ in seen] == list(range(20))
        assert {name for _, name in seen} == {"test-store-thread"}
    finally:
        thread.shutdown()


async def test_an_exception_reaches_the_waiter_and_the_thread_goes_on() -> None:
    thread = StoreThread("test-store-thread")
    try:
        def fails() -> None:
            raise ValueError("no such table")

        with pytest.raises(ValueError, match="no such table"):
            await thread.run(fails)
        assert await thread.run(lambda: "still serving") == "still serving"
    finally:
        thread.shutdown()


async def test_shutdown_runs_what_is_queued_and_then_refuses_new_jobs() -> None:
    thread = StoreThread("test-store-thread")
    ran: list[int] = []
    for i in range(5):
        thread.submit(lambda i=i: ran.append(i))
    thread.shutdown()
    assert ran == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="shut down"):
        thread.submit(lambda: None)
    thread.shutdown()  # a second shutdown is harmless


async def test_a_waiter_that_gave_up_is_not_answered() -> None:
    thread = StoreThread("test-store-thread")
    try:
        release = threading.Event()
        waiter = asyncio.ensure_future(thread.run(lambda: release.wait(5)))
        await asyncio.sleep(0.05)
        waiter.cancel()
        release.set()
        assert await thread.run(lambda: 42) == 42  # the cancelled future was skipped, no InvalidStateError
        assert waiter.cancelled()
    finally:
        thread.shutdown()


async def test_a_job_that_raises_is_logged_and_the_thread_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    thread = StoreThread("test-store-thread")
    try:
        def broken() -> None:
            raise RuntimeError("a bug in a job")

        thread.submit(broken)
        assert await asyncio.wait_for(thread.run(lambda: "still serving"), 5) == "still serving"
        assert any("a store thread job failed" in r.getMessage() and r.exc_info for r in caplog.records)
    finally:
        thread.shutdown()
