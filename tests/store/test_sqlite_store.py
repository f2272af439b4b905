"""What only the SQLite store promises: WAL, durable intake, migrations, races between processes."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from gateway.config import GatewaySettings
from gateway.store import open_store
from gateway.store.phone_hash import hash_phone
from gateway.store.redis import RedisStore
from gateway.store.sqlite import MIGRATIONS, SqliteStore
from tests.store.conftest import PHONE_KEY
from tests.store.store_support import make_ticket, national

REPO = Path(__file__).resolve().parents[2]
RAW = b'{"hotlineNo":"GZ-1"}'

_PUSHER = """
import asyncio, json, sys
from gateway.store.sqlite import SqliteStore
from tests.store.store_support import make_ticket, national

async def main() -> None:
    store = SqliteStore(sys.argv[1], b"test-phone-hash-key")
    await store.open()
    results = await asyncio.gather(*(store.intake(make_ticket(), b"{}", "application/json", [national()])
                                     for _ in range(10)))
    await store.close()
    print(json.dumps([[r.ticket_id, r.created] for r in results]))

asyncio.run(main())
"""


async def test_the_file_is_in_wal_mode_and_intake_is_synced_in_full(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    await store.open()
    try:
        health = await store.health()
        assert (health["journal_mode"], health["synchronous"], health["acknowledged_synchronous"]) == (
            "wal", "NORMAL", "FULL")
        assert health["persistent"] is True and health["schema_version"] == len(MIGRATIONS)
    finally:
        await store.close()


async def test_the_phone_index_holds_a_keyed_hash_not_the_number(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    await store.open()
    await store.intake(make_ticket(phone="13800138000"), RAW, "application/json", [])
    await store.close()
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        [(stored,)] = db.execute("SELECT complainant_phone_hash FROM tickets").fetchall()
    assert stored == hash_phone("+8613800138000", PHONE_KEY)
    assert "13800138000" not in stored
    assert stored != hash_phone("+8613800138000", b"another key")


async def test_racing_pushes_from_four_processes_create_one_ticket(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    store = SqliteStore(db, PHONE_KEY)
    await store.open()  # the schema exists before the race
    await store.close()
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", _PUSHER, str(db), cwd=REPO,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = [await p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [err.decode() for _, err in outputs]
    results = [tuple(r) for out, _ in outputs for r in json.loads(out)]
    assert len(results) == 40
    assert sum(created for _, created in results) == 1
    assert len({ticket_id for ticket_id, _ in results}) == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tickets").fetchone() == (1,)
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (1,)


async def test_a_file_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    with pytest.raises(RuntimeError, match="newer than this gateway knows"):
        await store.open()


async def test_using_a_store_before_open_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await SqliteStore(tmp_path / "gateway.db", PHONE_KEY).get_cursor("x")


async def test_open_store_chooses_by_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIG_PHONE_HASH_KEY", raising=False)
    region = {"code": "522600", "name": "黔东南苗族侗族自治州"}
    sqlite_settings = GatewaySettings(region=region, data_dir=tmp_path)
    store = open_store(sqlite_settings)
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "gateway.db"
    async with store:
        await store.enqueue("t1", "k1", [national()])
    assert (tmp_path / "phone-hash.key").stat().st_mode & 0o777 == 0o600

    redis_settings = GatewaySettings(region=region, data_dir=tmp_path,
                                     store={"kind": "redis", "redis_url": "redis://127.0.0.1:6379/0"})
    assert isinstance(open_store(redis_settings, phone_hash_key=b"k"), RedisStore)
