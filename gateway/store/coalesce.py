"""Many callers' small jobs done as one: what callers hand in while a flush runs all goes into the next flush."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")

# One flush over many callers' items: for each item, in order, the error that kept it from going out, or None.
Flush = Callable[[list[T]], Awaitable[Sequence[Exception | None]]]


class Coalescer(Generic[T]):
    """Runs `flush(items)` over the items of every caller waiting when it starts, one flush at a time.

    A caller returns when the flush that took its items has ended. It raises the first error the flush
    reported for one of its own items, or what the flush raised as a whole; an item that failed does not fail
    the other callers of its group. The first caller's items go out at once (no timer, no batch size to wait
    for): items coalesce only while a flush is already under way, which is when a caller would otherwise queue
    for the connection anyway. A caller that is cancelled leaves its items to be flushed all the same.
    """

    def __init__(self, flush: Flush[T]) -> None:
        self._flush = flush
        self._waiting: list[tuple[Sequence[T], asyncio.Future[None]]] = []
        self._running: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[T]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((items, done))
        if self._running is None:
            self._running = asyncio.get_running_loop().create_task(self._run())
        await done  # cancelling this caller cancels only its own future: its items still go out

    async def drain(self) -> None:
        """Wait until everything handed in so far has been flushed (or has failed)."""
        while self._running is not None:
            await asyncio.wait({self._running})

    async def _run(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    errors = await self._flush([item for items, _ in group for item in items])
                except Exception as err:  # every caller of the group hears it
                    errors = [err] * sum(len(items) for items, _ in group)
                except BaseException:  # cancelled (the loop is ending): so are its callers
                    _cancel(group)
                    raise
                _answer(group, errors)
        finally:
            self._running = None
            left, self._waiting = self._waiting, []
            _cancel(left)  # only when cancelled: otherwise nothing is left


def _answer(group: list[tuple[Sequence[T], asyncio.Future[None]]], errors: Sequence[Exception | None]) -> None:
    start = 0
    for items, done in group:
        own = errors[start:start + len(items)]
        start += len(items)
        if done.done():
            continue  # its caller was cancelled
        failure = next((err for err in own if err is not None), None)
        if failure is None:
            done.set_result(None)
        else:
            done.set_exception(failure)


def _cancel(group: list[tuple[Sequence[T], asyncio.Future[None]]]) -> None:
    for _, done in group:
        done.cancel()  # a no-op for a future already settled
