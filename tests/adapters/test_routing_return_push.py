"""A routing rule with `action: return` through a live push: the 信用修复 rule switched to return answers the
partner 200 `returned` with the configured reason, stores no ticket, keeps the payload with the rule named, and the
partner's callback receiver hears the 退单."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from contracts.ticket import idempotency_key_of
from simulators.peer import load_fixtures, with_fresh_number
from tests.adapters.adapter_support import ROUTING_FILE, serve_gateway
from tests.adapters.test_inbound_push import push_city
from tests.e2e.e2e_support import running_world, wait_for

CREDIT_REPAIR = {"appealTypeCode": "03", "appealTypeName": "咨询", "appealTitle": "咨询信用修复",
                 "appealContent": "我店已补报年度报告，咨询如何申请移出经营异常名录。"}
ROUTE_OR_RETURN = "action: route                         # or: return"  # the credit-repair rule in routing.yaml
# Its return_reason, as config/routing.yaml says it.
CREDIT_REPAIR_REASON = "信用修复申请请向作出列入决定的市场监督管理部门或通过国家企业信用信息公示系统办理"


def return_credit_repair(routing: Path) -> None:
    """The 信用修复 rule in this routing file switched from route to return."""
    text = routing.read_text(encoding="utf-8")
    assert ROUTE_OR_RETURN in text
    routing.write_text(text.replace(ROUTE_OR_RETURN, "action: return"), encoding="utf-8")


def routing_with_return(folder: Path) -> Path:
    folder.mkdir()
    for name in ("organisations.yaml", "organisations-520000.yaml", "routing.yaml"):
        shutil.copy(ROUTING_FILE.parent / name, folder / name)
    return_credit_repair(folder / "routing.yaml")
    return folder / "routing.yaml"


def credit_repair_request() -> dict[str, Any]:
    return {**with_fresh_number(load_fixtures("city-12345-rest")["01-food-complaint"], ("hotlineNo",)), **CREDIT_REPAIR}


def test_a_credit_repair_request_is_returned_when_the_rule_says_return(dev_credentials: dict[str, str],
                                                                        tmp_path: Path) -> None:
    payload = credit_repair_request()
    with serve_gateway(tmp_path / "data", routing_file=routing_with_return(tmp_path / "config")) as gw:
        response = push_city(gw, payload)

        assert response.status_code == 200
        answer = response.json()
        assert answer["returned"] is True and answer["reason_code"] == "7"
        assert answer["reason"] == CREDIT_REPAIR_REASON
        kept = gw.run(gw.store.get_quarantined(answer["quarantine_id"]))
        assert kept is not None
        assert "routing rule credit-repair" in kept.errors[0].message
        key = idempotency_key_of("city-12345", str(payload["hotlineNo"]), "1")
        assert gw.run(gw.store.find_ticket_id(idempotency_key=key)) is None  # no ticket stored


def test_the_partners_callback_receiver_hears_the_return(tmp_path: Path) -> None:
    payload = credit_repair_request()
    with running_world(tmp_path, adjust=lambda config: return_credit_repair(config / "routing.yaml")) as world:
        pushed = world.city.push(payload)
        assert pushed.status == 200 and pushed.body["returned"] is True, pushed.body

        heard = wait_for("the city 12345 to receive the 退单", lambda: [
            c.body for c in world.city.callbacks.received()
            if isinstance(c.body, dict) and c.body.get("hotlineNo") == payload["hotlineNo"]], 15)

    (callback,) = heard
    assert (callback["handleStatus"], callback["handleResult"]) == ("3", "3")  # 已退回, 退单
    assert (callback["handleOpinion"], callback["returnReason"]) == (CREDIT_REPAIR_REASON, "其他")  # reason code 7


def test_by_default_the_same_request_is_stored_and_routed(dev_credentials: dict[str, str], tmp_path: Path) -> None:
    payload = credit_repair_request()
    with serve_gateway(tmp_path / "data") as gw:
        response = push_city(gw, payload)
        assert response.status_code == 202
        ticket = gw.run(gw.store.get_ticket(response.json()["ticket_id"]))
        assert ticket is not None
        assert [(r.destination, r.rule_id) for r in ticket.routing.routes] == [("credit", "credit-repair")]
