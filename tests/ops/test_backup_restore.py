"""`hig backup` / `hig restore`: a backup made while the gateway runs, restored under another data folder, serves the
same tickets, found by the same phone number (the phone-hash key travels with the file); a damaged copy, a key that is
not the backup's and a Redis store are refused, and a key in the environment that will not open the file is warned
about."""

from __future__ import annotations

import contextlib
import json
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.hardening.live_gateway import CITY, REPO, GatewayFiles, running, serve, write_config
from tests.hig_command import Completed, run_hig
from tests.ops.ops_support import city_complaint

PHONE = "139 8501 2345"


def _main(files: GatewayFiles, *args: str) -> subprocess.CompletedProcess[str]:
    """`python main.py` in its own process: the first backup and the first restore."""
    return subprocess.run([sys.executable, "main.py", *args, "-c", str(files.gateway_yaml)], cwd=REPO,
                          env=files.env, capture_output=True, text=True, timeout=300)


def _in_process(files: GatewayFiles, *args: str, env: dict[str, str] | None = None) -> Completed:
    """The same command line in this process (with `files.env`, or `env`): the refusals, where only the answer is
    the point."""
    return run_hig(*args, "-c", str(files.gateway_yaml), env=files.env if env is None else env)


def _found_by_phone(files: GatewayFiles) -> dict[str, str]:
    """Source ticket number -> ticket id of every ticket the gateway finds by the complainant's phone."""
    answer = httpx.get(f"{files.url}/api/v1/tickets", params={"complainant_phone": PHONE},
                       headers={"Authorization": f"Bearer {files.ops_tokens['operator']}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return {t["source_ticket_no"]: t["ticket_id"] for t in answer.json()}


def test_a_backup_made_while_serving_restores_elsewhere_and_serves_the_same_tickets(tmp_path: Path) -> None:
    first = write_config(tmp_path / "first", workers=False)
    backup_folder = tmp_path / "backup-1"
    with running(serve(first)):
        for no in ("KL-BACKUP-1", "KL-BACKUP-2"):
            pushed = httpx.post(first.inbound(CITY), json=city_complaint(no, **{"contactPhone": "13985012345"}),
                                headers={"X-Api-Key": first.credentials["PARTNER_CITY12345_API_KEY"]}, timeout=30)
            assert pushed.status_code in (200, 201, 202), pushed.text
        before = _found_by_phone(first)
        assert set(before) == {"KL-BACKUP-1", "KL-BACKUP-2"}
        made = _main(first, "backup", str(backup_folder))
        assert made.returncode == 0, made.stderr
        assert json.loads(made.stdout)["tickets"] == 2
        again = _in_process(first, "backup", str(backup_folder))
        assert again.returncode == 1 and "is not empty" in again.stderr
    assert (backup_folder / "phone-hash.key").stat().st_mode & 0o777 == 0o600

    second = write_config(tmp_path / "second", workers=False)
    restored = _main(second, "restore", str(backup_folder))
    assert restored.returncode == 0, restored.stderr
    with running(serve(second)):
        assert _found_by_phone(second) == before
        detail = httpx.get(f"{second.url}/api/v1/tickets/{before['KL-BACKUP-1']}",
                           headers={"Authorization": f"Bearer {second.ops_tokens['operator']}"}, timeout=30)
        assert detail.status_code == 200 and detail.json()["ticket"]["source"]["source_ticket_no"] == "KL-BACKUP-1"
        busy = _in_process(second, "restore", str(backup_folder), "--force")
        assert busy.returncode == 1 and "restore refused" in busy.stderr and "already has a gateway" in busy.stderr
    over = _in_process(second, "restore", str(backup_folder))
    assert over.returncode == 1 and "exists" in over.stderr and "--force" in over.stderr


@pytest.fixture
def backup_folder(tmp_path: Path) -> Path:
    """A backup of a new store (its schema, no tickets), made by `hig backup`."""
    source = write_config(tmp_path / "source", workers=False)
    assert _in_process(source, "migrate").returncode == 0
    folder = tmp_path / "backup"
    made = _in_process(source, "backup", str(folder))
    assert made.returncode == 0, made.stderr
    return folder


def _damage(db: Path) -> None:
    """The tickets table's first page overwritten, as a bad sector or a torn copy leaves it; the rest intact."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
        root = int(conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tickets'").fetchone()[0])
    with db.open("r+b") as copy:
        copy.seek((root - 1) * page_size)
        copy.write(b"\xa5" * page_size)


def test_a_damaged_backup_copy_is_refused_by_its_integrity_check(tmp_path: Path, backup_folder: Path) -> None:
    _damage(backup_folder / "gateway.db")
    target = write_config(tmp_path / "target", workers=False)
    refused = _in_process(target, "restore", str(backup_folder))
    assert refused.returncode == 1, refused.stdout
    assert "restore refused" in refused.stderr and "is damaged (PRAGMA integrity_check" in refused.stderr
    assert not (target.root / "data" / "gateway.db").exists()


def test_a_key_file_that_is_not_the_backups_key_is_refused(tmp_path: Path, backup_folder: Path) -> None:
    (backup_folder / "phone-hash.key").write_text(secrets.token_hex(32) + "\n", encoding="ascii")
    target = write_config(tmp_path / "target", workers=False)
    refused = _in_process(target, "restore", str(backup_folder))
    assert refused.returncode == 1, refused.stdout
    assert "phone-hash.key is not the key this backup was made with" in refused.stderr
    assert not (target.root / "data" / "gateway.db").exists()


def test_a_phone_hash_key_in_the_environment_other_than_the_backups_is_warned_about(tmp_path: Path,
                                                                                    backup_folder: Path) -> None:
    target = write_config(tmp_path / "target", workers=False)
    other = _in_process(target, "restore", str(backup_folder), env={**target.env, "HIG_PHONE_HASH_KEY": "another"})
    assert other.returncode == 0, other.stderr
    assert "warning: HIG_PHONE_HASH_KEY is set to another key than this backup's" in other.stderr
    backup_key = (backup_folder / "phone-hash.key").read_text(encoding="ascii").strip()
    same = _in_process(target, "restore", str(backup_folder), "--force",
                       env={**target.env, "HIG_PHONE_HASH_KEY": backup_key})
    assert same.returncode == 0, same.stderr
    assert "warning" not in same.stderr


def test_backup_on_a_redis_store_is_refused_naming_how_redis_is_backed_up(tmp_path: Path) -> None:
    files = write_config(tmp_path / "redis", workers=False)
    refused = _in_process(files, "backup", str(tmp_path / "backup"), env={**files.env, "HIG_STORE__KIND": "redis"})
    assert refused.returncode == 2, refused.stdout
    assert "the store is redis, not SQLite" in refused.stderr and "docs/deployment.md" in refused.stderr
    assert not (tmp_path / "backup").exists()
