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
from contracts.ulids import new_ulid
from gateway.config import load_settings
from gateway.ops.access import parse_token_hash
from gateway.runtime import Runtime
from gateway.store import Store
from gateway.store.base import AlertRecord, AuditQuery
from tests.hig_command import Completed, run_hig
from tests.ops.ops_support import CONFIG, REPO, city_complaint, fixture_payload, on_store
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
        await runtime.start(workers=False, pollers=False, alerts=False)
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
    assert "KL-CLI-1" in shown.stdout and seeded["KL-CLI-1:delivery"] in shown.stdout and "dead 死信" in shown.stdout
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["ticket_id", "工单编号", ticket]
    [echo] = [line.split() for line in lines if line.startswith("echo ")]
    assert echo == ["echo", "来源回音", "尚无状态回写（来源系统无回调，或尚无状态变化）"]
    # Each table of the ticket starts with its header row, every column named in English and in Chinese.
    deliveries, timeline = lines.index("deliveries 投递:"), lines.index("timeline 时间线:")
    assert lines[deliveries + 1].split() == ["delivery_id", "投递编号", "destination", "目的地", "state", "状态",
                                            "attempts", "次数", "last", "最近结果"]
    assert lines[deliveries + 2].split()[:4] == [seeded["KL-CLI-1:delivery"], "national", "dead", "死信"]
    assert lines[timeline + 1].split() == ["at", "时间", "event", "事件"]

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
    assert by_source.stdout.splitlines()[0].split() == ["ticket_id", "工单编号", seeded["KL-CLI-1"]]
    timeline = by_source.stdout.split("timeline 时间线:\n", 1)[1].splitlines()[1:]  # after its header row
    assert len(timeline) >= 3  # received, registered, stored, attempts…: each in China time, whoever wrote it
    assert all(line.split()[0].endswith("+08:00") for line in timeline), timeline
    by_national = _main("tickets", "show", national_no, "--config", str(gateway_yaml))
    assert by_national.returncode == 0, by_national.stderr
    assert by_national.stdout.splitlines()[0].split() == ["ticket_id", "工单编号", seeded["KL-CLI-2"]]
    assert ["national_no", "全国登记号", national_no] in [line.split() for line in by_national.stdout.splitlines()]
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


def _seed_retrying(gateway_yaml: Path) -> str:
    """One complaint whose national delivery failed once (503) and waits out a two-hour backoff: retrying."""

    async def seed() -> str:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.start(workers=False, pollers=False, alerts=False)
        try:
            payload = city_complaint("KL-CLI-RETRY")
            outcome = await runtime.intake.accept("city-12345-rest", payload, raw_body=json.dumps(payload).encode(),
                                                  content_type="application/json")
            assert outcome.ticket_id
            [claim] = await runtime.store.claim("national", "cli-test", 30)
            await runtime.store.settle_retry(claim, attempt(claim, outcome=AttemptOutcome.RETRY, status_code=503,
                                                            error_class="http_503"),
                                             datetime.now(UTC) + timedelta(hours=2))
            return claim.delivery_id
        finally:
            await runtime.stop()

    return asyncio.run(seed())


def test_retry_now_by_filter_names_its_lane_and_an_empty_dead_letter_filter_points_to_retrying(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    delivery_id = _seed_retrying(gateway_yaml)

    bare = _main("deliveries", "replay", "--retrying", "--config", str(gateway_yaml))
    assert bare.returncode == 2  # every retrying delivery of every lane at once: refused, saying how to narrow it
    assert "--retrying 需要同时给出筛选条件" in bare.stderr and "--destination" in bare.stderr
    assert "--retrying needs a filter as well" in bare.stderr

    dead = _main("deliveries", "replay", "--destination", "national", "--config", str(gateway_yaml))
    assert dead.returncode == 0, dead.stderr
    summary = json.loads(dead.stdout.strip().splitlines()[-1])
    assert (summary["matched"], summary["replayed"]) == (0, 0)
    assert summary["hint"] == "没有死信符合条件；有 1 个重试中的投递符合：加 --retrying 立即重试"
    assert summary["hint_en"] == "no dead letter matches; 1 retrying deliveries do: add --retrying to retry them now"

    now = _main("deliveries", "replay", "--retrying", "--destination", "national", "--config", str(gateway_yaml))
    assert now.returncode == 0, now.stderr
    summary = json.loads(now.stdout.strip().splitlines()[-1])
    assert (summary["matched"], summary["replayed"], summary["destinations"]) == (1, 1, {"national": 1})
    assert "hint" not in summary

    assert delivery_id in _main("deliveries", "list", "--state", "retrying", "--config", str(gateway_yaml)).stdout

    elsewhere = _main("deliveries", "replay", "--retrying", "--destination", "callback:city-12345-rest",
                      "--config", str(gateway_yaml))
    summary = json.loads(elsewhere.stdout.strip().splitlines()[-1])
    assert (summary["matched"], summary["hint"]) == (0, "没有重试中的投递符合条件，也没有死信符合")
    assert summary["hint_en"] == "no retrying delivery matches, nor do any dead letters"


def test_a_reference_naming_several_tickets_is_409_listing_them(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    legacy = fixture_payload("legacy-registration", "01-12365-quality-complaint")
    number = legacy["djbh"]  # the same number on two lines: the city's 12345 and the legacy 12365 system

    async def seed() -> list[str]:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.start(workers=False, pollers=False, alerts=False)
        try:
            ids = []
            for adapter_id, payload in (("city-12345-rest", city_complaint(number)), ("legacy-registration", legacy)):
                outcome = await runtime.intake.accept(adapter_id, payload, raw_body=json.dumps(payload).encode(),
                                                      content_type="application/json")
                assert outcome.ticket_id, outcome
                ids.append(outcome.ticket_id)
            return ids
        finally:
            await runtime.stop()

    city_ticket, legacy_ticket = asyncio.run(seed())
    shown = _main("tickets", "show", number, "--config", str(gateway_yaml))
    assert shown.returncode == 1 and shown.stdout == ""
    refusal = json.loads(shown.stderr)
    assert (refusal["error"], refusal["field"]) == ("ambiguous_reference", "ticket_id")
    assert refusal["message"].startswith(f"{number} 对应多张工单：")
    assert f"{city_ticket} (city-12345-rest)" in refusal["message"]
    assert f"{legacy_ticket} (legacy-registration)" in refusal["message"]
    assert refusal["message_en"].endswith("give the ticket id")
    assert _main("tickets", "show", legacy_ticket, "--config", str(gateway_yaml)).returncode == 0  # the id is one


def test_an_ops_command_runs_no_alert_round(tmp_path: Path) -> None:
    """With no gateway running, an ops command neither takes the store's alerts lock nor fires or resolves alerts
    from its own empty breakers and pollers (the dead letters and overdue tickets seeded here would fire alerts, the
    breaker alert below would resolve)."""
    gateway_yaml = _config(tmp_path)
    _seed(gateway_yaml)  # dead letters on the national lane
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    breaker = AlertRecord(alert_id=new_ulid(), key="breaker_open:national", rule="breaker_open", subject="national",
                          severity="critical", state="firing", summary="national 线路熔断", count=1, peak=1,
                          started_at=long_ago, updated_at=long_ago, last_seen_at=long_ago)

    async def gateway_gone(store: Store) -> list[AlertRecord]:
        """The gateway that held the lock and fired the alert is gone: its lock ran out a second ago, so any monitor
        would take it now."""
        await store.save_alert(breaker)
        assert await store.try_lock("alerts", "gateway-gone", -1)
        assert await store.lock_holder("alerts") is None
        return await store.list_alerts(limit=100)

    before = on_store(gateway_yaml, gateway_gone)
    assert [(a.alert_id, a.state) for a in before] == [(breaker.alert_id, "firing")]
    listed = _main("deliveries", "list", "--config", str(gateway_yaml))
    assert listed.returncode == 0, listed.stderr
    assert on_store(gateway_yaml, lambda store: store.list_alerts(limit=100)) == before  # none fired, none resolved
    # Still the gone gateway's: nobody took the lock meanwhile.
    assert on_store(gateway_yaml, lambda store: store.take_over_lock("alerts", "gateway-gone", "test", 60)) is True


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
    header, line, total = listed.stdout.strip().splitlines()
    assert header.split()[6:10] == ["seen", "次数", "last", "最近一次"]
    assert line.startswith(quarantine_id) and line.split()[3] == "×3"
    assert "(classification.business_type unmapped_code)" in line
    assert total == "1 payload(s) 共 1 件"


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
    header, line, total = listed.stdout.strip().splitlines()
    assert header.split() == ["ticket_id", "工单编号", "adapter", "对接系统", "source_no", "来源工单号", "national",
                              "全国状态", "heard", "来源已收到", "behind_since", "未获回音起始", "callback", "待送回调",
                              "attempts", "次数", "last", "最近结果"]
    ticket, adapter, number, national, national_zh, heard, since, _, state, state_zh, attempts, last = line.split()
    assert (ticket, adapter, number) == (ticket_id, "city-12345-rest", "KL-CLI-ECHO")
    assert (national, national_zh, heard) == ("ACCEPTED", "已受理", "尚无")  # the partner has heard nothing yet
    assert since.endswith("+08:00")  # behind since, in China time
    assert (state, state_zh, attempts, last) == ("pending", "待发送", "0", "-")  # its callback: queued, not yet tried
    assert total == "1 ticket(s) 共 1 件"
