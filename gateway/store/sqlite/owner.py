"""One gateway per SQLite file: the process serving a store file holds an exclusive lock beside it while it runs.

The embedded store is single-node by design (one writer thread, a per-process breaker and lanes); a second gateway or
worker on the same file would claim the same deliveries under a second set of leases. The lock is `flock` on
`<file>.owner`, released by the kernel when the process ends however it ends, so a crash leaves nothing to clean up.
The ops command line (`tickets`, `deliveries`, `quarantine`) does not take it: it works beside a running gateway.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from gateway.store.errors import StoreError


class StoreFileInUse(StoreError, RuntimeError):
    """Another gateway or worker process is serving this SQLite file."""


def owner_file(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".owner")


@contextmanager
def store_file_owned(db_path: Path, role: str) -> Iterator[None]:
    """Hold `db_path` for this process (`role`: what it is, e.g. "gateway on 127.0.0.1:8315") while the block runs;
    StoreFileInUse naming the holder when another process holds it."""
    path = owner_file(db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreFileInUse(_refusal(db_path, os.pread(fd, 4096, 0))) from None
        record = json.dumps({"pid": os.getpid(), "role": role, "since": datetime.now(UTC).isoformat()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode("utf-8"), 0)
        yield
    finally:
        os.close(fd)  # the lock goes with the descriptor


def _refusal(db_path: Path, holder: bytes) -> str:
    try:
        found = json.loads(holder.decode("utf-8"))
        who = f"{found['role']} (pid {found['pid']}, since {found['since']})"
    except (ValueError, KeyError, TypeError):
        who = "another process"
    return (f"the store file {db_path} is already served by {who}: the SQLite store is single-node, one gateway "
            f"per file. Stop that one first, give this one another data_dir, or use store.kind: redis for several "
            f"processes")
