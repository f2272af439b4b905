"""`python main.py tickets|deliveries|quarantine|ops ...` on the configured store: progress, summary, audit."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from contracts.delivery import AttemptOutcome
from contracts.status import StatusEvent
from gateway.config import load_settings
from gateway.ops.access import parse_token_hash
from gateway.runtime import Runtime
from gateway.store.base import AuditQuery
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


def _main(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "main.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env=dict(os.environ), check=False)


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

    dry = _main("deliveries", "replay", "--destination", "national", "--dry-run", "--config", str(gateway_yaml))
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout.strip().splitlines()[-1]) == {"matched": 2, "would_replay": 2, "dry_run": True,
                                                               "destinations": {"national": 2}}

    one = _main("deliveries", "replay", "--id", seeded["KL-CLI-2:delivery"], "--config", str(gateway_yaml))
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout.strip().splitlines()[-1])["replayed"] == 1
    assert "replaying" in one.stderr  # the progress bar

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


def test_a_missing_ticket_and_a_replay_without_target_are_told_plainly(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    missing = _main("tickets", "show", "01J0000000000000000000000Z", "--config", str(gateway_yaml))
    assert missing.returncode == 1 and '"field": "ticket_id"' in missing.stderr
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
