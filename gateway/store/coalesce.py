"""Many callers' small jobs done as one: what callers hand in while a flush runs all goes into the next flush."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Runs `flush(items)` over the items of every caller waiting when it starts, one flush at a time.

    A caller returns when the flush that took its items has ended, or raises what that flush raised. The
    first caller's items go out at once (no timer, no batch size to wait for): items coalesce only while a
    flush is already under way, which is when a caller would otherwise queue for the connection anyway. A
    caller that is cancelled leaves its items to be flushed all the same.
    """

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]]) -> None:
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
                    await self._flush([item for items, _ in group for item in items])
                except Exception as err:  # every caller of the group hears it
                    _settle(group, err)
                except BaseException:  # cancelled (the loop is ending): so are its callers
                    _settle(group, None, cancel=True)
                    raise
                else:
                    _settle(group, None)
        finally:
            self._running = None
            left, self._waiting = self._waiting, []
            _settle(left, None, cancel=True)  # only when cancelled: otherwise nothing is left


def _settle(group: list[tuple[Sequence[T], asyncio.Future[None]]], error: Exception | None, *,
            cancel: bool = False) -> None:
    for _, done in group:
        if done.done():
            continue  # its caller was cancelled
        if cancel:
            done.cancel()
        elif error is not None:
            done.set_exception(error)
        else:
            done.set_result(None)
