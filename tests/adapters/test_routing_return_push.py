"""A routing rule with `action: return` through a live push: the 信用修复 rule switched to return answers the
partner 200 `returned` with the configured reason, stores no ticket and keeps the payload with the rule named."""

from __future__ import annotations

import shutil
from pathlib import Path

from contracts.ticket import idempotency_key_of
from simulators.peer import load_fixtures, with_fresh_number
from tests.adapters.adapter_support import ROUTING_FILE, serve_gateway
from tests.adapters.test_inbound_push import push_city

CREDIT_REPAIR = {"appealTypeCode": "03", "appealTypeName": "咨询", "appealTitle": "咨询信用修复",
                 "appealContent": "我店已补报年度报告，咨询如何申请移出经营异常名录。"}


def routing_with_return(folder: Path) -> Path:
    folder.mkdir()
    for name in ("organisations.yaml", "organisations-520000.yaml"):
        shutil.copy(ROUTING_FILE.parent / name, folder / name)
    text = ROUTING_FILE.read_text(encoding="utf-8")
    assert "action: route                         # or: return" in text
    routing = folder / "routing.yaml"
    routing.write_text(text.replace("action: route                         # or: return", "action: return"),
                       encoding="utf-8")
    return routing


def test_a_credit_repair_request_is_returned_when_the_rule_says_return(dev_credentials: dict[str, str],
                                                                        tmp_path: Path) -> None:
    payload = {**with_fresh_number(load_fixtures("city-12345-rest")["01-food-complaint"], ("hotlineNo",)),
               **CREDIT_REPAIR}
    with serve_gateway(tmp_path / "data", routing_file=routing_with_return(tmp_path / "config")) as gw:
        response = push_city(gw, payload)

        assert response.status_code == 200
        answer = response.json()
        assert answer["returned"] is True and answer["reason_code"] == "7"
        assert "国家企业信用信息公示系统" in answer["reason"]
        kept = gw.run(gw.store.get_quarantined(answer["quarantine_id"]))
        assert kept is not None
        assert "routing rule credit-repair" in kept.errors[0].message
        key = idempotency_key_of("city-12345", str(payload["hotlineNo"]), "1")
        assert gw.run(gw.store.find_ticket_id(idempotency_key=key)) is None  # no ticket stored


def test_by_default_the_same_request_is_stored_and_routed(dev_credentials: dict[str, str], tmp_path: Path) -> None:
    payload = {**with_fresh_number(load_fixtures("city-12345-rest")["01-food-complaint"], ("hotlineNo",)),
               **CREDIT_REPAIR}
    with serve_gateway(tmp_path / "data") as gw:
        response = push_city(gw, payload)
        assert response.status_code == 202
        ticket = gw.run(gw.store.get_ticket(response.json()["ticket_id"]))
        assert ticket is not None
        assert [(r.destination, r.rule_id) for r in ticket.routing.routes] == [("credit", "credit-repair")]
