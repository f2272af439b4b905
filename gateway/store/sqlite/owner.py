"""One gateway and one set of delivery workers per SQLite file: each holds an exclusive lock beside the file while
it runs.

The embedded store is single-node by design: one gateway (HTTP, pollers) and one process running the delivery lanes —
the gateway itself (`workers: true`) or one `worker` beside it. A second of either, on the same file, would serve the
same partners twice or claim the same deliveries under a second set of breakers and rate limits. Each part is an
`flock` on `<file>.<part>.owner`, released by the kernel when the process ends however it ends, so a crash leaves
nothing to clean up. The ops command line (`tickets`, `deliveries`, `quarantine`) takes neither: it works beside a
running gateway.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from gateway.store.errors import StoreError

# What of a store file a process runs: the gateway (HTTP API and pollers), or the delivery workers.
Part = Literal["gateway", "workers"]
_PART_WORDS: dict[Part, str] = {"gateway": "a gateway", "workers": "its delivery workers"}


class StoreFileInUse(StoreError, RuntimeError):
    """Another gateway or worker process is serving this SQLite file."""


def owner_file(db_path: Path, part: Part) -> Path:
    return db_path.with_name(f"{db_path.name}.{part}.owner")


@contextmanager
def store_file_owned(db_path: Path, part: Part, role: str) -> Iterator[None]:
    """Hold `part` of `db_path` for this process (`role`: what it is, e.g. "the gateway on 127.0.0.1:8315") while
    the block runs; StoreFileInUse naming the holder when another process holds it."""
    path = owner_file(db_path, part)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StoreFileInUse(_refusal(db_path, part, os.pread(fd, 4096, 0))) from None
        record = json.dumps({"pid": os.getpid(), "role": role, "since": datetime.now(UTC).isoformat()})
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode("utf-8"), 0)
        yield
    finally:
        os.close(fd)  # the lock goes with the descriptor


def _refusal(db_path: Path, part: Part, holder: bytes) -> str:
    try:
        found = json.loads(holder.decode("utf-8"))
        who = f"{found['role']} (pid {found['pid']}, since {found['since']})"
    except (ValueError, KeyError, TypeError):
        who = "another process"
    return (f"the store file {db_path} already has {_PART_WORDS[part]}: {who}. The SQLite store is single-node: one "
            f"gateway and one set of delivery workers per file. Stop that one first, give this one another data_dir, "
            f"or use store.kind: redis for several processes")
