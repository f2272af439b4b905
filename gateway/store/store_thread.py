"""The SQLite store's own thread: runs its jobs one after another, and answers the event loop.

A ThreadPoolExecutor of one worker did the same, but each submit while its worker was busy paid for a
timed semaphore acquire (a Condition and a fresh lock): a sizeable part of the store's CPU per delivery
under load. A simple queue and one thread have nothing to decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


def answer(done: asyncio.Future[Any], result: object) -> None:
    """Complete `done` with a result or an exception, unless its waiter gave up (cancelled) meanwhile."""
    if done.done():
        return
    if isinstance(result, BaseException):
        done.set_exception(result)
    else:
        done.set_result(result)


class StoreThread:
    """One thread running submitted jobs in order until shut down. A job answers its own caller; one that
    raises is logged and the thread goes on."""

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue a job; RuntimeError once shut down (the job will not run)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the store thread is shut down")
            self._jobs.put(job)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the thread; its result or exception, once it is done."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()

        def job() -> None:
            try:
                result: object = fn()
            except BaseException as err:  # handed to the waiter, never raised on this thread
                result = err
            with contextlib.suppress(RuntimeError):  # the waiter's loop is closed: nobody waits
                loop.call_soon_threadsafe(answer, done, result)

        self.submit(job)
        return await done

    def shutdown(self) -> None:
        """Run what is queued, then end the thread; returns when it has ended."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # a job's bug must not end the thread: every later caller would wait forever
                log.exception("a store thread job failed")
