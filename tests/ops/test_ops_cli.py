"""`python main.py tickets|deliveries|quarantine|ops ...` on the configured store: progress, summary, audit."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

from contracts.codesets import Status
from contracts.delivery import AttemptOutcome
from contracts.status import StatusEvent
from gateway.config import load_settings
from gateway.ops.access import parse_token_hash
from gateway.runtime import Runtime
from gateway.store.base import AuditQuery
from tests.hig_command import Completed, run_hig
from tests.ops.ops_support import CONFIG, REPO, city_complaint
from tests.store.store_support import attempt


def _config(tmp: Path) -> Path:
    """The demo configuration with its store under tmp, without simulators or credit look-ups."""
    config = tmp / "config"
    shutil.copytree(CONFIG, config)
    gateway = config / "gateway.yaml"
    data = yaml.safe_load(gateway.read_text(encoding="utf-8"))
    data.update({"data_dir": str(tmp / "data"), "workers": False, "pollers": False})
    data["demo"]["simulators"] = False
    data["credit_lookup"]["url"] = None
    gateway.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return gateway


def _seed(gateway_yaml: Path) -> dict[str, str]:
    """Two complaints with dead national deliveries and one quarantined payload, through the real runtime."""

    async def seed() -> dict[str, str]:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.start(workers=False, pollers=False)
        try:
            found: dict[str, str] = {}
            for no in ("KL-CLI-1", "KL-CLI-2"):
                payload = city_complaint(no)
                outcome = await runtime.intake.accept("city-12345-rest", payload, raw_body=json.dumps(payload)
                                                      .encode(), content_type="application/json")
                assert outcome.ticket_id
                found[no] = outcome.ticket_id
                [claim] = await runtime.store.claim("national", "cli-test", 30)
                await runtime.store.settle_dead(claim, attempt(claim, outcome=AttemptOutcome.PERMANENT,
                                                               status_code=400, error_class="http_400"))
                found[f"{no}:delivery"] = claim.delivery_id
            bad = city_complaint("KL-CLI-3", appealTypeCode="99")
            outcome = await runtime.intake.accept("city-12345-rest", bad, raw_body=json.dumps(bad).encode(),
                                                  content_type="application/json")
            assert outcome.quarantine_id
            found["quarantine"] = outcome.quarantine_id
            return found
        finally:
            await runtime.stop()

    return asyncio.run(seed())


def _main(*args: str) -> Completed:
    """`python main.py *args`, called in this process; `ops hash-token` below starts the real one."""
    return run_hig(*args)


def _audit(gateway_yaml: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    async def read() -> list[tuple[str, str, tuple[str, ...]]]:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.store.open()
        try:
            return [(e.actor, e.action, e.ticket_ids) for e in await runtime.store.list_audit(AuditQuery())]
        finally:
            await runtime.store.close()

    return asyncio.run(read())


def test_tickets_show_deliveries_replay_and_quarantine_remap_work_on_the_configured_store(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    seeded = _seed(gateway_yaml)
    ticket = seeded["KL-CLI-1"]

    shown = _main("tickets", "show", ticket, "--config", str(gateway_yaml))
    assert shown.returncode == 0, shown.stderr
    assert "KL-CLI-1" in shown.stdout and seeded["KL-CLI-1:delivery"] in shown.stdout and "dead" in shown.stdout
    assert "timeline:" in shown.stdout
    assert "sender's echo - (no status callback yet)" in shown.stdout

    dry = _main("deliveries", "replay", "--destination", "national", "--dry-run", "--config", str(gateway_yaml))
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout.strip().splitlines()[-1]) == {"matched": 2, "would_replay": 2, "dry_run": True,
                                                               "destinations": {"national": 2}, "not_replayed": {}}

    one = _main("deliveries", "replay", "--id", seeded["KL-CLI-2:delivery"], "--config", str(gateway_yaml))
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout.strip().splitlines()[-1])["replayed"] == 1
    assert "replaying" in one.stderr  # the progress bar
    again = _main("deliveries", "replay", "--id", seeded["KL-CLI-2:delivery"], "--config", str(gateway_yaml))
    summary = json.loads(again.stdout.strip().splitlines()[-1])
    assert summary["replayed"] == 0  # it is waiting on its lane now, and the summary says so
    assert summary["not_replayed"][seeded["KL-CLI-2:delivery"]] == {
        "state": "pending", "reason": "pending", "message": "已在队列中等待发送，无需重新投递"}

    remap = _main("quarantine", "remap", "--adapter", "city-12345-rest", "--config", str(gateway_yaml))
    assert remap.returncode == 1  # the spec still cannot map it
    summary = json.loads(remap.stdout.strip().splitlines()[-1])
    assert summary["outcomes"] == {"still_rejected": 1}
    assert summary["still_failing"][seeded["quarantine"]] == ["classification.business_type (unmapped_code)"]

    actions = _audit(gateway_yaml)
    actors = {actor for actor, _, _ in actions}
    assert len(actors) == 1 and next(iter(actors)).startswith("cli:")
    assert ("replay", (seeded["KL-CLI-2"],)) in [(a, t) for _, a, t in actions]
    assert "quarantine.remap" in [a for _, a, _ in actions]


def test_tickets_show_takes_the_source_ticket_number_or_the_national_registration_number(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    seeded = _seed(gateway_yaml)
    national_no = "1231552260120240315000042"

    async def register() -> None:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.store.open()
        try:
            ticket = await runtime.store.get_ticket(seeded["KL-CLI-2"])
            assert ticket is not None
            await runtime.store.save_ticket(ticket.model_copy(update={"national_registration_no": national_no}), [])
        finally:
            await runtime.store.close()

    asyncio.run(register())
    by_source = _main("tickets", "show", "KL-CLI-1", "--config", str(gateway_yaml))
    assert by_source.returncode == 0, by_source.stderr
    assert by_source.stdout.startswith(f"ticket {seeded['KL-CLI-1']}")
    timeline = by_source.stdout.split("timeline:\n", 1)[1].splitlines()
    assert len(timeline) >= 3  # received, registered, stored, attempts…: each in China time, whoever wrote it
    assert all(line.split()[0].endswith("+08:00") for line in timeline), timeline
    by_national = _main("tickets", "show", national_no, "--config", str(gateway_yaml))
    assert by_national.returncode == 0, by_national.stderr
    assert by_national.stdout.startswith(f"ticket {seeded['KL-CLI-2']}") and national_no in by_national.stdout
    quarantined = _main("quarantine", "list", "--config", str(gateway_yaml)).stdout.splitlines()
    assert quarantined[0].split()[:2] == ["quarantine_id", "隔离编号"]
    said = "业务类型：代码不在对照表中，无法对应国家标准代码 (classification.business_type unmapped_code)"
    assert said in quarantined[1]
    dead = _main("deliveries", "list", "--config", str(gateway_yaml)).stdout.splitlines()
    assert dead[0].split()[:2] == ["delivery_id", "投递编号"] and "dead 死信" in dead[1]
    found = _main("tickets", "find", "--source-no", "KL-CLI-1", "--config", str(gateway_yaml))
    header, row, total = found.stdout.strip().splitlines()
    assert header.split()[:2] == ["ticket_id", "工单编号"] and "来源工单号" in header  # a header row names the columns
    assert row.startswith(seeded["KL-CLI-1"]) and "KL-CLI-1" in row
    assert total == "1 ticket(s) 共 1 件"


def test_a_missing_ticket_and_a_replay_without_target_are_told_plainly(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    missing = _main("tickets", "show", "01J0000000000000000000000Z", "--config", str(gateway_yaml))
    assert missing.returncode == 1 and '"field": "ticket_id"' in missing.stderr
    assert "source ticket number or national registration number" in missing.stderr  # says what it looked for
    nothing = _main("deliveries", "replay", "--config", str(gateway_yaml))
    assert nothing.returncode == 2 and "--id" in nothing.stderr


def test_deliveries_compact_reports_and_is_audited(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    _seed(gateway_yaml)  # dead deliveries only, and all new: nothing to compact
    compact = _main("deliveries", "compact", "--older-than-days", "30", "--config", str(gateway_yaml))
    assert compact.returncode == 0, compact.stderr
    assert json.loads(compact.stdout.strip().splitlines()[-1]) == {"compacted": 0, "older_than_days": 30}
    assert "compact" in [action for _, action, _ in _audit(gateway_yaml)]
    refused = _main("deliveries", "compact", "--older-than-days", "0", "--config", str(gateway_yaml))
    assert refused.returncode == 2 and "older-than-days" in refused.stderr


def test_ops_hash_token_prints_a_salted_hash_the_users_file_accepts() -> None:
    done = subprocess.run([sys.executable, "main.py", "ops", "hash-token"], cwd=REPO, input="my-ops-token\n",
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert parse_token_hash(done.stdout.strip()).verify("my-ops-token")


def test_tickets_on_time_answers_per_organisation_and_limit(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)

    async def seed() -> str:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.start(workers=False, pollers=False)
        try:
            payload = city_complaint("KL-CLI-ONTIME")  # received 2024-03-15: acceptance due 2024-03-26
            outcome = await runtime.intake.accept("city-12345-rest", payload, raw_body=json.dumps(payload).encode(),
                                                  content_type="application/json")
            assert outcome.ticket_id
            await runtime.status.apply(StatusEvent(event_id="evt-cli-1", ticket_id=outcome.ticket_id, sequence=1,
                                                   at="2024-03-28T10:00:00+08:00", status="ACCEPTED"))
            ticket = await runtime.store.get_ticket(outcome.ticket_id)
            assert ticket is not None and ticket.routing.handler_org_code
            return ticket.routing.handler_org_code
        finally:
            await runtime.stop()

    handler = asyncio.run(seed())
    done = _main("tickets", "on-time", "--since", "2024-03-01", "--until", "2024-03-31", "--json",
                 "-c", str(gateway_yaml))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert [(r["key"], r["met"], r["missed"]) for r in report["by_org"]] == [(handler, 0, 1)]
    assert [(r["key"], r["label"], r["missed"]) for r in report["by_limit"]] == [("acceptance", "受理时限", 1)]

    text = _main("tickets", "on-time", "--since", "2024-03-01", "--until", "2024-03-31", "-c", str(gateway_yaml))
    assert text.returncode == 0 and "受理时限" in text.stdout and "0.0%" in text.stdout
    wrong = _main("tickets", "on-time", "--since", "2024-03-31", "--until", "2024-03-01", "-c", str(gateway_yaml))
    assert wrong.returncode == 1 and "must not be after until" in wrong.stderr


def test_quarantine_list_shows_how_often_the_same_payload_came_and_when_last(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)

    async def push_thrice() -> str:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.start(workers=False, pollers=False)
        try:
            bad = city_complaint("KL-CLI-DUP", appealTypeCode="99")
            ids = set()
            for _ in range(3):
                outcome = await runtime.intake.accept("city-12345-rest", bad, raw_body=json.dumps(bad).encode(),
                                                      content_type="application/json")
                ids.add(outcome.quarantine_id)
            assert len(ids) == 1
            return str(ids.pop())
        finally:
            await runtime.stop()

    quarantine_id = asyncio.run(push_thrice())
    listed = _main("quarantine", "list", "--config", str(gateway_yaml))
    assert listed.returncode == 0, listed.stderr
    [line] = [row for row in listed.stdout.splitlines() if row.startswith(quarantine_id)]
    assert " ×3 last " in line and "(classification.business_type unmapped_code)" in line
    assert listed.stdout.strip().endswith("1 payload(s)")


def test_tickets_behind_lists_a_ticket_whose_partner_has_not_heard_its_status(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    data = yaml.safe_load(gateway_yaml.read_text(encoding="utf-8"))
    data["echo"] = {"behind_after_seconds": 1}
    gateway_yaml.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")

    async def accepted_and_not_heard() -> str:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.start(workers=False, pollers=False)  # no workers: the callback stays on its lane
        try:
            payload = city_complaint("KL-CLI-ECHO")
            outcome = await runtime.intake.accept("city-12345-rest", payload, raw_body=json.dumps(payload).encode(),
                                                  content_type="application/json")
            assert outcome.ticket_id
            await runtime.status.apply(StatusEvent(event_id="evt-cli-echo-1", ticket_id=outcome.ticket_id,
                                                   sequence=1, at=datetime.now(UTC), status=Status.ACCEPTED))
            for _ in range(600):  # until it has been behind for longer than the configured second
                if await runtime.store.count_behind(datetime.now(UTC) - timedelta(seconds=1)):
                    return outcome.ticket_id
                await asyncio.sleep(0.1)
            raise AssertionError("the ticket never counted as behind")
        finally:
            await runtime.stop()

    ticket_id = asyncio.run(accepted_and_not_heard())
    listed = _main("tickets", "behind", "--config", str(gateway_yaml))
    assert listed.returncode == 0, listed.stderr
    [line] = [row for row in listed.stdout.splitlines() if row.startswith(ticket_id)]
    assert "KL-CLI-ECHO" in line and "national ACCEPTED, partner heard nothing yet, behind since" in line
    assert "pending, 0 attempt(s)" in line
