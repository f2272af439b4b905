"""`python main.py tickets review list|accept|return` on the configured store: a ticket the jurisdiction screen held
is listed with its rule and evidence; accepting it enqueues the national forward, returning it the city's 退单;
each settlement is recorded on the ticket and audited under the command line's user."""

from __future__ import annotations

import asyncio
import getpass
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from contracts.ticket import Ticket
from gateway.config import load_settings
from gateway.runtime import Runtime
from gateway.store.base import DeliveryFilter, Store
from tests.ops.ops_support import REPO, city_complaint, on_store
from tests.ops.test_ops_cli import _audit, _config, _main

CITY = "city-12345-rest"
MEDICAL_BEAUTY = {"appealTitle": "医美机构注射玻尿酸后出现结节",
                  "appealContent": "在某医疗美容诊所注射玻尿酸后面部出现结节，诊所说是个人体质问题，拒绝处理。"}
CLI_ACTOR = f"cli:{getpass.getuser()}"  # docs/jurisdiction.md: "audited as `cli:<user>`"



def _seed(gateway_yaml: Path) -> dict[str, str]:
    """Through the real intake: a medical-beauty complaint the screen holds for review, and a food complaint it
    accepts."""

    async def seed() -> dict[str, str]:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.start(workers=False, pollers=False)
        try:
            found: dict[str, str] = {}
            for name, payload in (("held", city_complaint("KL-REVIEW-CLI-1", **MEDICAL_BEAUTY)),
                                  ("accepted", city_complaint("KL-REVIEW-CLI-2"))):
                outcome = await runtime.intake.accept(CITY, payload, raw_body=json.dumps(payload).encode(),
                                                      content_type="application/json")
                assert outcome.ticket_id and outcome.kind == ("review" if name == "held" else "created"), outcome
                found[name] = outcome.ticket_id
            return found
        finally:
            await runtime.stop()

    return asyncio.run(seed())


def _ticket(gateway_yaml: Path, ticket_id: str) -> Ticket:
    ticket = on_store(gateway_yaml, lambda store: store.get_ticket(ticket_id))
    assert ticket is not None
    return ticket


def _deliveries(gateway_yaml: Path, ticket_id: str) -> list[tuple[str, str, str]]:
    """(lane, kind, state) of each of a ticket's deliveries."""
    found = on_store(gateway_yaml, lambda store: store.list_deliveries(DeliveryFilter(ticket_id=ticket_id)))
    return [(d.destination, d.kind.value, d.state.value) for d in found]


def _callback_body(gateway_yaml: Path, ticket_id: str) -> dict[str, Any]:
    """The body of the ticket's delivery waiting on the city's callback lane, as the city will receive it."""

    async def claim(store: Store) -> bytes:
        claims = await store.claim(f"callback:{CITY}", "review-cli-test", 30, limit=10)
        return next(c.body for c in claims if c.ticket_id == ticket_id)

    body: dict[str, Any] = json.loads(on_store(gateway_yaml, claim))
    return body


def test_review_list_shows_the_held_ticket_with_its_rule_and_evidence_under_chinese_headings(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    seeded = _seed(gateway_yaml)

    listed = _main("tickets", "review", "list", "--config", str(gateway_yaml))

    assert listed.returncode == 0, listed.stderr
    header, row, total = listed.stdout.strip().splitlines()
    assert header.split()[:2] == ["ticket_id", "工单编号"] and "来源工单号" in header and "规则" in header
    assert "依据" in header and "理由" in header
    assert row.startswith(seeded["held"]) and "KL-REVIEW-CLI-1" in row
    assert " review.medical-beauty " in row and "registration.title=医美" in row
    assert "医美机构注射玻尿酸后出现结节" in row and "卫生健康部门" in row
    assert seeded["accepted"] not in listed.stdout  # taken on at intake: nothing to decide
    assert total == "1 ticket(s) waiting for review 待判定 共 1 件"


def test_review_accept_enqueues_the_national_forward_and_is_audited_under_the_command_lines_user(
        tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    held = _seed(gateway_yaml)["held"]
    assert _deliveries(gateway_yaml, held) == []  # held: nothing sent

    done = _main("tickets", "review", "accept", held, "--reason", "医美机构虚假宣传与消费争议，由市场监管受理",
                 "--config", str(gateway_yaml))

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{held}: accept 受理, ") and "已排队投递 1 件" in done.stdout
    assert _deliveries(gateway_yaml, held) == [("national", "forward", "pending")]
    decision = _ticket(gateway_yaml, held).routing.jurisdiction
    assert decision is not None
    assert (decision.outcome, decision.rule_id, decision.decided_by) == ("accept", "review.medical-beauty", CLI_ACTOR)
    assert (CLI_ACTOR, "jurisdiction.review", (held,)) in _audit(gateway_yaml)
    after = _main("tickets", "review", "list", "--config", str(gateway_yaml))
    assert after.stdout.strip().splitlines()[-1] == "0 ticket(s) waiting for review 待判定 共 0 件"


def test_review_return_run_as_a_process_marks_the_ticket_returned_and_enqueues_the_citys_return(
        tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    held = _seed(gateway_yaml)["held"]
    reason = "注射后并发症属于医疗行为，请转卫生健康部门处理"

    done = subprocess.run([sys.executable, "main.py", "tickets", "review", "return", held, "--reason", reason,
                           "--authority", "卫生健康部门", "--config", str(gateway_yaml)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)

    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{held}: return 退回, status 状态 RETURNED, ")
    ticket = _ticket(gateway_yaml, held)
    assert ticket.lifecycle.status.value == "RETURNED"
    decision = ticket.routing.jurisdiction
    assert decision is not None
    assert (decision.outcome, decision.competent_authority, decision.decided_by) == (
        "return", "卫生健康部门", CLI_ACTOR)
    assert _deliveries(gateway_yaml, held) == [(f"callback:{CITY}", "callback", "pending")]  # never the national
    callback = _callback_body(gateway_yaml, held)
    assert (callback["hotlineNo"], callback["handleStatus"], callback["handleResult"]) == ("KL-REVIEW-CLI-1", "3", "3")
    assert callback["handleOpinion"] == reason
    assert (CLI_ACTOR, "jurisdiction.review", (held,)) in _audit(gateway_yaml)
