"""Chinese first: what a partner reads when its ticket does not map — the 422 answer to a REST push and the SOAP Fault
— names the field and the rule in Chinese, keeps the stable rule code, and gives the English beside it."""

from __future__ import annotations

import json

from lxml import etree

from adapters.wire.envelope import SOAP11_ENV
from gateway.http.wsdl import TNS
from tests.hardening.test_hostile_input import CITY, Live, Request, envelope, live, order, send, soap, submit
from tests.ops.ops_support import city_complaint

__all__ = ["live"]  # the live gateway of the hostile-input suite, one per module


def test_a_rest_push_that_does_not_map_is_answered_in_chinese_with_the_rule_code(live: Live) -> None:
    body = json.dumps(city_complaint("KL-ZH-1", appealTypeCode="99"), ensure_ascii=False).encode("utf-8")
    answer = send(live, "zh-rest", Request("POST", f"/api/v1/inbound/{CITY}/tickets", body, {
        "Content-Type": "application/json; charset=utf-8", "X-Api-Key": live.city_key}))
    assert answer.status == 422
    found = json.loads(answer.body)
    assert found["message"] == "工单不符合全国12315数据标准，已隔离待处理" and "quarantine" in found["message_en"]
    [error] = [e for e in found["errors"] if e["field"] == "classification.business_type"]
    assert error["rule"] == "unmapped_code"  # the machine-readable code is what it was
    assert error["message"] == "业务类型：代码不在对照表中，无法对应国家标准代码"
    assert error["message_en"] and error["message_en"] != error["message"]
    assert error["source_path"] == "appealTypeCode"


def test_a_soap_order_that_does_not_map_gets_a_fault_in_chinese(live: Live) -> None:
    unmappable = order().replace("<aim>投诉</aim>", "<aim>闲聊</aim>")
    answer = send(live, "zh-soap", soap(envelope(live, submit(unmappable)).encode()))
    code, text = answer.fault()
    assert code.endswith("Client")
    assert text.startswith("工单不符合全国12315数据标准，已隔离待处理（隔离编号 ") and "业务类型：" in text
    root = etree.fromstring(answer.body)
    [item] = [e for e in root.iter(f"{{{TNS}}}fieldError") if e.findtext(f"{{{TNS}}}field") ==
              "classification.business_type"]
    assert item.findtext(f"{{{TNS}}}rule") == "unmapped_code"
    assert item.findtext(f"{{{TNS}}}message") == "业务类型：代码不在对照表中，无法对应国家标准代码"
    assert item.findtext(f"{{{TNS}}}messageEn")
    assert root.find(f"{{{SOAP11_ENV}}}Body") is not None
