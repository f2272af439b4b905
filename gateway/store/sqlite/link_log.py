"""Cross-line duplicate look-ups on SQLite: each ticket's link keys are appended to `link_log` in intake's
transaction (one row at the end of the table), and found through an index in the process's memory, read from
that table when a serving gateway starts (`SqliteStore.warm_up`) or at the first look-up, and kept up with it.

Why not an index in the file: a key index is random by nature, so each ticket's keys land on leaf pages of their
own, and every commit writes those pages to the WAL (and a checkpoint writes them again). On a gateway at full
load that cost 12-18 % of intake's CPU; appended rows share the table's last page (docs/benchmarks.md).

What the memory holds: for each key, the (received_at, ticket_id) of the tickets indexed under it that were
received within the horizon (twice the link window: a ticket arriving up to one window late still finds all of its
candidates), about 0.35 KB per ticket (docs/links.md). Older rows are evicted from the memory and the table
when it is first read and then every `EVICT_EVERY` appends. Writers in other processes (the ops CLI's re-map)
append to the same table: the memory catches up with the rows other connections committed (`PRAGMA data_version`
tells when there are any) before a look-up or append, at most every `CATCH_UP_EVERY_S`.

All of it runs on the store thread; intake's, inside its write transaction.
"""

from __future__ import annotations

import sqlite3
import time
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from datetime import timedelta

from gateway.config import LinkSettings
from gateway.store.records import now_ms

Entry = tuple[int, str]  # (received_at in ms, ticket_id): what a key finds, in the order candidates are chosen
DEFAULT_WINDOW_DAYS = LinkSettings().window_days  # the shipped link window, unless the store is given another
CATCH_UP_EVERY_S = 0.1  # how soon a row another process appends is found, at most
EVICT_EVERY = 1024  # appends between two evictions of the rows received before the horizon
EVICT_BATCH = 2000  # rows read per eviction step


def keys_text(keys: Sequence[int]) -> str:
    """The keys as `link_log.link_keys` keeps them: space-separated decimal integers."""
    return " ".join(map(str, keys))


def keys_of(text: str) -> list[int]:
    """The keys a `link_log.link_keys` holds (`keys_text` read back)."""
    return [int(key) for key in text.split()]


def newest_bodies(db: sqlite3.Connection, newest: dict[str, int], limit: int) -> list[str]:
    """The bodies of the newest `limit` of the tickets `newest` (id: received_at), newest first (ties by id,
    descending); a ticket no longer stored (or never: its transaction rolled back) is skipped."""
    if not newest:
        return []
    chosen = sorted(newest, key=lambda ticket_id: (newest[ticket_id], ticket_id), reverse=True)[:limit]
    marks = ",".join("?" * len(chosen))
    bodies = dict(db.execute(f"SELECT id, body FROM tickets WHERE id IN ({marks})", chosen))  # noqa: S608
    return [str(bodies[ticket_id]) for ticket_id in chosen if ticket_id in bodies]


def horizon_of(window_days: int) -> timedelta:
    """How far back the memory keeps tickets for a link window of `window_days`: two windows (a ticket received one
    window ago and only now sent looks one more window back)."""
    return timedelta(days=2 * window_days)


class LinkLog:
    """The link keys of the tickets in the horizon, by key, over the rows of `link_log`."""

    def __init__(self, horizon: timedelta) -> None:
        self._horizon_ms = int(horizon.total_seconds() * 1000)
        self._by_key: dict[int, Entry | list[Entry]] = {}
        self._seen: int | None = None  # every row up to this seq is held; None until the table is read
        self._mine: set[int] = set()  # rows appended here beyond `_seen` (another process's row lies between)
        self._version: int | None = None  # PRAGMA data_version at the last look at it
        self._next_look = 0.0  # time.monotonic() from when it is looked at again
        self._evicted = 0  # every row up to this seq is evicted (from memory; from the table, unless another
        # process's row arrived out of received order)
        self._appends = 0
        self._newest = 0  # the latest received_at held (ms)

    def catch_up(self, db: sqlite3.Connection) -> int:
        """Read the rows other connections committed (all of them, the first time): at most every
        `CATCH_UP_EVERY_S`, when `PRAGMA data_version` says another connection committed (a statement of its own:
        at every intake it cost as much as the look-up). Returns how many rows it read."""
        first = self._seen is None
        if not first and time.monotonic() < self._next_look:
            return 0
        version = db.execute("PRAGMA data_version").fetchone()[0]
        self._next_look = time.monotonic() + CATCH_UP_EVERY_S
        if version == self._version and not first:
            return 0
        self._version = version
        seen, read = self._seen or 0, 0
        for seq, received, ticket_id, keys in db.execute(
                "SELECT seq, received_at, ticket_id, link_keys FROM link_log WHERE seq > ? ORDER BY seq", (seen,)):
            if seq in self._mine:
                self._mine.discard(seq)  # held since it was appended
            else:
                self._add(keys_of(keys), (received, ticket_id))
                read += 1
            seen = seq
        self._seen = seen
        if first:
            self.evict(db)
        return read

    def append(self, db: sqlite3.Connection, keys: Sequence[int], received: int, ticket_id: str) -> None:
        """The ticket's keys: a row at the end of `link_log` (in the caller's transaction) and in the memory."""
        self.catch_up(db)
        assert self._seen is not None  # the catch-up read the table
        seq = db.execute("INSERT INTO link_log (received_at, ticket_id, link_keys) VALUES (?,?,?)",
                         (received, ticket_id, keys_text(keys))).lastrowid or 0
        if seq == self._seen + 1:  # the next row: nothing of another process's lies between
            self._seen = seq
        else:  # rows of another process's lie between, read at the next catch-up; this one is held already
            self._mine.add(seq)
        # Should the transaction roll back, another row may take this seq; the memory then holds an entry with no
        # ticket, which a look-up skips, and the row taking its seq is missed until the next start.
        self._add(keys, (received, ticket_id))
        self._appends += 1
        if self._appends % EVICT_EVERY == 0:
            self.evict(db)

    def find(self, db: sqlite3.Connection, keys: Sequence[int], since: int, until: int, limit: int) -> list[str]:
        """The bodies of the newest `limit` tickets indexed under any of `keys` and received in [since, until],
        newest first (ties by ticket id, descending): per key its newest `limit` in the span, then the newest
        `limit` of those. A ticket no longer stored is skipped."""
        self.catch_up(db)
        newest: dict[str, int] = {}
        for key in keys:
            held = self._by_key.get(key)
            if held is None:
                continue
            entries = [held] if isinstance(held, tuple) else held
            high = bisect_right(entries, (until, "\U0010ffff"))
            low = max(bisect_left(entries, (since, "")), high - limit)
            for received, ticket_id in entries[low:high]:
                if newest.get(ticket_id, -1) < received:
                    newest[ticket_id] = received
        return newest_bodies(db, newest, limit)

    def evict(self, db: sqlite3.Connection) -> None:
        """Drop the rows received before the horizon, oldest appended first, from the memory and the table, up to
        the first row still within it."""
        cutoff = self._cutoff()
        while True:
            rows = db.execute("SELECT seq, received_at, ticket_id, link_keys FROM link_log WHERE seq > ?"
                              " ORDER BY seq LIMIT ?", (self._evicted, EVICT_BATCH)).fetchall()
            old = []
            for seq, received, ticket_id, keys in rows:
                if received >= cutoff:
                    break
                self._remove(keys_of(keys), (received, ticket_id))
                old.append(seq)
            if old:
                db.execute("DELETE FROM link_log WHERE seq <= ? AND received_at < ?", (old[-1], cutoff))
                self._evicted = old[-1]
            if len(old) < EVICT_BATCH:
                return

    def _cutoff(self) -> int:
        """Received before this (ms), a ticket is out of the horizon: counted back from now, or from the newest
        ticket received when that is older (a store of tickets from long ago, as a test's, keeps its own)."""
        return min(now_ms(), self._newest) - self._horizon_ms

    def _add(self, keys: Sequence[int], entry: Entry) -> None:
        self._newest = max(self._newest, entry[0])
        for key in keys:
            held = self._by_key.get(key)
            if held is None:
                self._by_key[key] = entry
            elif isinstance(held, tuple):
                if held != entry:
                    self._by_key[key] = sorted((held, entry))
            else:
                at = bisect_left(held, entry)
                if at == len(held) or held[at] != entry:
                    held.insert(at, entry)

    def _remove(self, keys: Sequence[int], entry: Entry) -> None:
        for key in keys:
            held = self._by_key.get(key)
            if held == entry:
                del self._by_key[key]
            elif isinstance(held, list):
                at = bisect_left(held, entry)
                if at < len(held) and held[at] == entry:
                    del held[at]
                    if len(held) == 1:
                        self._by_key[key] = held[0]
