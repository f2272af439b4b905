"""Operator actions: replay (one, by filter, dry run), re-mapping after a spec fix and reload; each one audited."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from gateway.store.base import DeliveryFilter
from tests.ops.ops_support import (
    CLINIC,
    CONFIG,
    MEDICAL_BEAUTY,
    NOISE,
    REPO,
    OpsGateway,
    city_complaint,
    city_matter,
    running_gateway,
)
from tests.ops.test_ops_dashboard import _sign_in


async def _dead(gw: OpsGateway, *numbers: str) -> dict[str, str]:
    """Ticket id -> its dead national delivery, for fresh complaints under these numbers."""
    found = {}
    for no in numbers:
        outcome = await gw.push(city_complaint(no))
        assert outcome.ticket_id is not None
        found[outcome.ticket_id] = await gw.kill_delivery()
    return found


async def _state(gw: OpsGateway, delivery_id: str) -> str:
    receipt = await gw.store.get_delivery(delivery_id)
    assert receipt is not None
    return receipt.state.value


async def test_replaying_one_dead_delivery_puts_it_back_and_audits_who_what_when_which_ticket(gw: OpsGateway) -> None:
    [(ticket_id, delivery_id)] = (await _dead(gw, "KL-REPLAY-1")).items()
    before = datetime.now(UTC)
    response = await gw.post("/api/v1/deliveries/replay", "operator", {"delivery_ids": [delivery_id]})
    assert response.status_code == 200
    assert response.json() | {"audit_id": None} == {"dry_run": False, "delivery_ids": [delivery_id],
                                                     "ticket_ids": [ticket_id], "count": 1, "audit_id": None,
                                                     "not_replayed": []}
    assert await _state(gw, delivery_id) == "pending"
    attempts = await gw.store.list_attempts(delivery_id)
    assert len(attempts) == 1  # the history is kept

    [entry] = (await gw.get("/api/v1/audit", "admin")).json()
    assert (entry["actor"], entry["role"], entry["action"], entry["outcome"]) == ("duty-operator", "operator",
                                                                                 "replay", "ok")
    assert entry["ticket_ids"] == [ticket_id]
    assert entry["detail"]["delivery_ids"] == [delivery_id]
    assert entry["detail"]["destinations"] == ["national"]
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(entry["at"]) <= datetime.now(UTC)
    assert entry["entry_id"] == response.json()["audit_id"]
    by_ticket = (await gw.get("/api/v1/audit", "admin", ticket_id=ticket_id)).json()
    assert [e["entry_id"] for e in by_ticket] == [entry["entry_id"]]


async def test_a_dry_run_lists_what_a_filter_would_replay_and_changes_nothing(gw: OpsGateway) -> None:
    dead = await _dead(gw, "KL-REPLAY-2", "KL-REPLAY-3")
    response = await gw.post("/api/v1/deliveries/replay", "operator",
                             {"filter": {"destination": "national", "error_class": "http_400"}, "dry_run": True})
    assert response.status_code == 200
    assert sorted(response.json()["delivery_ids"]) == sorted(dead.values())
    assert response.json()["dry_run"] is True
    assert [await _state(gw, d) for d in dead.values()] == ["dead", "dead"]
    [entry] = (await gw.get("/api/v1/audit", "admin")).json()
    assert entry["action"] == "replay.dry_run" and sorted(entry["ticket_ids"]) == sorted(dead)
    assert entry["detail"]["filter"] == {"state": "dead", "destination": "national", "error_class": "http_400",
                                         "limit": 100}


async def test_replay_by_filter_takes_only_the_matching_dead_letters(gw: OpsGateway) -> None:
    dead = await _dead(gw, "KL-REPLAY-4", "KL-REPLAY-5")
    response = await gw.post("/api/v1/deliveries/replay", "operator",
                             {"filter": {"destination": "national", "error_class": "http_503"}})
    assert response.json()["count"] == 0
    response = await gw.post("/api/v1/deliveries/replay", "operator", {"filter": {"destination": "national"}})
    assert response.json()["count"] == 2
    assert [await _state(gw, d) for d in dead.values()] == ["pending", "pending"]


async def test_a_replay_request_must_name_ids_or_a_filter_and_known_deliveries(gw: OpsGateway) -> None:
    neither = await gw.post("/api/v1/deliveries/replay", "operator", {"dry_run": True})
    assert neither.status_code == 422 and "delivery_ids or filter" in str(neither.json()["errors"])
    bad_field = await gw.post("/api/v1/deliveries/replay", "operator", {"filter": {"since": "yesterday"}})
    assert bad_field.status_code == 422 and bad_field.json()["field"] == "filter.since"
    unknown = await gw.post("/api/v1/deliveries/replay", "operator", {"delivery_ids": ["01J0000000000000000000000A"]})
    assert unknown.status_code == 404 and unknown.json()["field"] == "delivery_ids"


def _config_with_broken_spec(tmp: Path) -> tuple[Path, Path]:
    """A copy of the demo config whose city 12345 spec reads the ticket number from a key the partner never sends."""
    config = tmp / "config"
    shutil.copytree(CONFIG, config)
    specs = tmp / "specs"
    shutil.copytree(REPO / "mapping" / "specs", specs)
    spec = specs / "city-12345-rest.yaml"
    good = spec.read_text(encoding="utf-8")
    spec.write_text(good.replace("source.source_ticket_no: {path: hotlineNo,", "source.source_ticket_no: "
                                 "{path: hotlineNumber,"), encoding="utf-8")
    adapter = config / "adapters" / "city-12345-rest.yaml"
    adapter.write_text(adapter.read_text(encoding="utf-8").replace("mapping_spec: city-12345-rest",
                                                                    f"mapping_spec: {spec}"), encoding="utf-8")
    return config, spec


async def test_a_quarantined_payload_is_remapped_with_the_fixed_spec_after_a_reload(tmp_path: Path,
                                                                                  store_kind: str) -> None:
    config, spec = _config_with_broken_spec(tmp_path)
    async with running_gateway(tmp_path, store_kind=store_kind, config_dir=config) as gw:
        outcome = await gw.push(city_complaint("KL-REMAP-1"))
        assert outcome.kind == "quarantined"
        [item] = (await gw.get("/api/v1/quarantine")).json()
        assert item["errors"][0]["field"] == "source.source_ticket_no"
        qid = item["quarantine_id"]

        still = await gw.post(f"/api/v1/quarantine/{qid}/remap", "operator")
        assert still.status_code == 422 and still.json()["outcome"] == "still_rejected"
        assert still.json()["errors"][0]["field"] == "source.source_ticket_no"

        spec.write_text(spec.read_text(encoding="utf-8").replace("{path: hotlineNumber,", "{path: hotlineNo,"),
                        encoding="utf-8")
        reload = await gw.post("/api/v1/admin/reload", "admin")
        assert reload.status_code == 200, reload.text

        remapped = await gw.post(f"/api/v1/quarantine/{qid}/remap", "operator")
        assert remapped.status_code == 200 and remapped.json()["outcome"] == "created"
        ticket_id = remapped.json()["ticket_id"]
        ticket = await gw.store.get_ticket(ticket_id)
        assert ticket is not None and ticket.source.source_ticket_no == "KL-REMAP-1"
        assert await gw.store.get_raw_payload(ticket_id) is not None
        assert len(await gw.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id))) == 1
        assert (await gw.get("/api/v1/quarantine")).json() == []  # resolved
        resolved = (await gw.get("/api/v1/quarantine", include_resolved="true")).json()
        assert resolved[0]["resolved_ticket_id"] == ticket_id
        again = await gw.post(f"/api/v1/quarantine/{qid}/remap", "operator")
        assert again.json()["outcome"] == "already_resolved"

        audit = (await gw.get("/api/v1/audit", "admin")).json()
        assert [(e["action"], e["outcome"]) for e in audit] == [
            ("quarantine.remap", "ok"), ("config.reload", "ok"), ("quarantine.remap", "still_rejected")]
        assert audit[0]["ticket_ids"] == [ticket_id] and audit[0]["detail"]["quarantine_id"] == qid


async def test_a_broken_configuration_is_refused_on_reload_naming_the_file_and_nothing_changes(
        tmp_path: Path) -> None:
    config, _spec = _config_with_broken_spec(tmp_path)
    async with running_gateway(tmp_path, config_dir=config) as gw:
        specs_before = gw.runtime.intake.specs
        routing = config / "routing.yaml"
        routing.write_text(routing.read_text(encoding="utf-8").replace("destination: emergency",
                                                                       "destination: nowhere"), encoding="utf-8")
        response = await gw.post("/api/v1/admin/reload", "admin")
        assert response.status_code == 422
        assert response.json()["field"] == "configuration"
        assert "routing.yaml" in response.json()["message"] and "nowhere" in response.json()["message"]
        assert gw.runtime.intake.specs is specs_before
        [entry] = (await gw.get("/api/v1/audit", "admin")).json()
        assert (entry["action"], entry["outcome"]) == ("config.reload", "invalid")


async def test_a_changed_transport_is_named_as_needing_a_restart(tmp_path: Path) -> None:
    config, _ = _config_with_broken_spec(tmp_path)
    async with running_gateway(tmp_path, config_dir=config) as gw:
        adapter = config / "adapters" / "city-12345-rest.yaml"
        text = adapter.read_text(encoding="utf-8")
        adapter.write_text(text.replace("max_attempts: 8", "max_attempts: 9"), encoding="utf-8")
        response = await gw.post("/api/v1/admin/reload", "admin")
        assert response.json()["restart_required"] == ["adapter:city-12345-rest"]
        again = await gw.post("/api/v1/admin/reload", "admin")  # still not running: still named
        assert again.json()["restart_required"] == ["adapter:city-12345-rest"]
        await _sign_in(gw, "viewer")
        board = await gw.client.get("/ops")
        assert 'id="restart-pending"' in board.text and "需重启网关后才生效" in board.text
        assert "adapter:city-12345-rest" in board.text
        adapter.write_text(text, encoding="utf-8")  # back to what runs
        undone = await gw.post("/api/v1/admin/reload", "admin")
        assert undone.json()["restart_required"] == []
        assert 'id="restart-pending"' not in (await gw.client.get("/ops")).text


async def test_a_changed_section_of_the_gateways_own_file_is_named_as_needing_a_restart(tmp_path: Path) -> None:
    config, _ = _config_with_broken_spec(tmp_path)
    async with running_gateway(tmp_path, config_dir=config) as gw:
        own = config / "gateway.yaml"
        text = own.read_text(encoding="utf-8")
        assert "  threshold: 0.6 " in text
        own.write_text(text.replace("  threshold: 0.6 ", "  threshold: 0.7 "), encoding="utf-8")
        response = await gw.post("/api/v1/admin/reload", "admin")
        assert response.json()["restart_required"] == ["gateway.yaml:links"]
        again = await gw.post("/api/v1/admin/reload", "admin")
        assert again.json()["restart_required"] == ["gateway.yaml:links"]
        own.write_text(text, encoding="utf-8")
        undone = await gw.post("/api/v1/admin/reload", "admin")
        assert undone.json()["restart_required"] == []


@pytest.mark.parametrize("workers", [False, True], ids=["workers-apart", "workers-inside"])
async def test_changed_deadline_rules_and_calendar_name_the_worker_processes_when_the_workers_run_apart(
        tmp_path: Path, workers: bool) -> None:
    """A `hig worker` judges a delivered reporter notice by the rules and calendar of its own start; the gateway
    applies both at once."""
    config, _ = _config_with_broken_spec(tmp_path)
    async with running_gateway(tmp_path, config_dir=config, workers=workers) as gw:
        rules = config / "deadline-rules.yaml"
        rules_text = rules.read_text(encoding="utf-8")
        assert rules_text.count("working_days: 5\n        counted_from: filing_decision") == 2
        rules.write_text(rules_text.replace("working_days: 5\n        counted_from: filing_decision",
                                            "working_days: 6\n        counted_from: filing_decision"),
                         encoding="utf-8")
        calendar = config / "calendar-overrides.yaml"
        calendar_text = calendar.read_text(encoding="utf-8")
        calendar.write_text(calendar_text.replace(
            "holidays: []", 'holidays:\n  - {date: 2026-12-08, reason: "全市停工（测试）"}'), encoding="utf-8")

        response = await gw.post("/api/v1/admin/reload", "admin")

        assert response.status_code == 200, response.text
        assert response.json()["restart_required"] == (
            [] if workers else ["hig worker:deadline-rules.yaml", "hig worker:calendar-overrides.yaml"])
        assert not gw.runtime.components.calendar.is_working_day(date(2026, 12, 8))  # a Tuesday, now a holiday
        await _sign_in(gw, "viewer")
        board = (await gw.client.get("/ops")).text
        assert ("hig worker:calendar-overrides.yaml" in board) is not workers
        assert ("需重启独立运行的投递进程 hig worker" in board) is not workers
        rules.write_text(rules_text, encoding="utf-8")
        calendar.write_text(calendar_text, encoding="utf-8")
        assert (await gw.post("/api/v1/admin/reload", "admin")).json()["restart_required"] == []


async def test_a_remapped_payload_goes_through_the_jurisdiction_screen_like_a_push(tmp_path: Path,
                                                                                  store_kind: str) -> None:
    config, spec = _config_with_broken_spec(tmp_path)
    async with running_gateway(tmp_path, store_kind=store_kind, config_dir=config) as gw:
        noise = await gw.push(city_matter("KL-REMAP-NOISE", *NOISE))
        held = await gw.push(city_matter("KL-REMAP-REVIEW", *MEDICAL_BEAUTY, respondent=CLINIC))
        assert noise.kind == held.kind == "quarantined"
        spec.write_text(spec.read_text(encoding="utf-8").replace("{path: hotlineNumber,", "{path: hotlineNo,"),
                        encoding="utf-8")
        assert (await gw.post("/api/v1/admin/reload", "admin")).status_code == 200

        returned = await gw.post(f"/api/v1/quarantine/{noise.quarantine_id}/remap", "operator")
        reviewed = await gw.post(f"/api/v1/quarantine/{held.quarantine_id}/remap", "operator")

        # Another authority's matter: not stored, the city hears its 退单 naming the authority.
        assert returned.status_code == 200, returned.text
        assert returned.json()["outcome"] == "returned" and returned.json()["ticket_id"] is None
        assert returned.json()["jurisdiction"]["rule_id"] == "return.noise-neighbours"
        [callback] = await gw.store.claim("callback:city-12345-rest", "test-worker", 30)
        body = json.loads(callback.body)
        assert body["hotlineNo"] == "KL-REMAP-NOISE" and body["handleStatus"] == "3"
        assert "生态环境部门" in body["handleOpinion"]
        # Held for review: stored with the decision, nothing sent, waiting on the review list.
        assert reviewed.status_code == 200, reviewed.text
        assert reviewed.json()["outcome"] == "review"
        ticket_id = reviewed.json()["ticket_id"]
        ticket = await gw.store.get_ticket(ticket_id)
        assert ticket is not None and ticket.routing.jurisdiction is not None
        assert ticket.routing.jurisdiction.rule_id == "review.medical-beauty"
        assert await gw.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id)) == []
        assert ticket_id in [r["ticket"]["ticket_id"] for r in (await gw.get("/api/v1/reviews")).json()]
        # The held one's entry is resolved by its ticket; the returned one is closed with its 退单, listed as a pushed
        # 退单's entry is.
        [listed] = (await gw.get("/api/v1/quarantine")).json()
        assert listed["quarantine_id"] == noise.quarantine_id and listed["returned"] is True
        outcomes = {(e["action"], e["outcome"]) for e in (await gw.get("/api/v1/audit", "admin")).json()}
        assert {("quarantine.remap", "returned"), ("quarantine.remap", "ok")} <= outcomes
