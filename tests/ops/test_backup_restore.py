"""`hig backup` / `hig restore`: a backup made while the gateway runs, restored under another data folder, serves the
same tickets, found by the same phone number (the phone-hash key travels with the file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.hardening.live_gateway import CITY, REPO, GatewayFiles, running, serve, write_config
from tests.hig_command import Completed, run_hig
from tests.ops.ops_support import city_complaint

PHONE = "139 8501 2345"


def _main(files: GatewayFiles, *args: str) -> subprocess.CompletedProcess[str]:
    """`python main.py` in its own process: the first backup and the first restore."""
    return subprocess.run([sys.executable, "main.py", *args, "-c", str(files.gateway_yaml)], cwd=REPO,
                          env=files.env, capture_output=True, text=True, timeout=300)


def _in_process(files: GatewayFiles, *args: str) -> Completed:
    """The same command line in this process: the refusals, where only the answer is the point."""
    return run_hig(*args, "-c", str(files.gateway_yaml), env=files.env)


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
