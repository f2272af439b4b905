"""Chinese first: what a partner reads when its ticket does not map — the 422 answer to a REST push and the SOAP Fault
— names the field and the rule in Chinese, keeps the stable rule code, and gives the English beside it; so does every
other refusal (a wrong key, an unknown adapter, a failed WS-Security check, an unsigned status event, an ops request
with a bad field)."""

from __future__ import annotations

import json

from lxml import etree

from adapters.wire.envelope import SOAP11_ENV
from adapters.wire.wsse import username_token
from gateway.http.wsdl import TNS
from tests.hardening.test_hostile_input import (
    CITY,
    SOAP_USER,
    Live,
    Request,
    _national,
    _national_unsigned,
    envelope,
    live,
    order,
    send,
    soap,
    submit,
)
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


def _push(live: Live, adapter_id: str, key: str) -> dict[str, str]:
    body = json.dumps(city_complaint("KL-ZH-2"), ensure_ascii=False).encode("utf-8")
    answer = send(live, f"zh-push-{adapter_id}", Request("POST", f"/api/v1/inbound/{adapter_id}/tickets", body, {
        "Content-Type": "application/json; charset=utf-8", "X-Api-Key": key}))
    found: dict[str, str] = json.loads(answer.body)
    found["status"] = str(answer.status)
    return found


def test_a_push_with_a_wrong_key_is_refused_in_chinese_with_its_code(live: Live) -> None:
    found = _push(live, CITY, "not-the-city-key")
    assert (found["status"], found["error"]) == ("401", "unauthorized")  # the code is what it was
    assert found["message"] == "X-Api-Key 头中的密钥无效"
    assert found["message_en"] == "the X-Api-Key header does not hold a valid key"


def test_a_push_to_an_unknown_adapter_is_refused_in_chinese_with_its_code(live: Live) -> None:
    found = _push(live, "no-such-partner", live.city_key)
    assert (found["status"], found["error"]) == ("404", "unknown_adapter")
    assert found["message"] == "本网关没有接收推送的对接系统 'no-such-partner'"
    assert "no adapter 'no-such-partner'" in found["message_en"]


def test_a_soap_call_failing_ws_security_gets_a_fault_in_chinese_with_its_code(live: Live) -> None:
    wrong = etree.tostring(username_token(SOAP_USER, "not-the-password"), encoding="unicode")
    text = (f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Header>{wrong}</soap:Header>'
            f"<soap:Body>{submit(order())}</soap:Body></soap:Envelope>")
    answer = send(live, "zh-soap-wsse", soap(text.encode()))
    code, text = answer.fault()
    assert code == "soap:Client"  # what partners' zeep clients match on, unchanged
    assert text == "wsse:FailedAuthentication: 安全令牌未通过认证（用户名不存在或密码摘要不正确）"
    english = etree.fromstring(answer.body).findtext(f".//{{{TNS}}}SubmitTicketFault/{{{TNS}}}messageEn")
    assert english == ("wsse:FailedAuthentication: the security token could not be authenticated (unknown username "
                       "or wrong password digest)")


def test_the_national_platform_hears_its_refusals_in_chinese_with_their_codes(live: Live) -> None:
    event = (b'{"event_id":"e-zh","ticket_id":"01J0000000000000000000000Z","sequence":1,'
             b'"at":"2024-03-30T10:00:00+08:00","status":"ACCEPTED"}')
    unsigned = json.loads(send(live, "zh-national-unsigned", _national_unsigned(live, event)).body)
    assert unsigned["error"] == "unauthorized"
    assert unsigned["message"] == "缺少签名头：webhook-id、webhook-timestamp、webhook-signature"
    assert unsigned["message_en"] == "missing header(s): webhook-id, webhook-timestamp, webhook-signature"
    unknown = send(live, "zh-national-unknown", _national(live, event))
    assert unknown.status == 404
    assert json.loads(unknown.body) == {"error": "unknown_ticket", "message": "没有工单 01J0000000000000000000000Z",
                                        "message_en": "no ticket 01J0000000000000000000000Z"}


def test_an_ops_request_with_an_invalid_field_is_refused_in_chinese(live: Live) -> None:
    answer = live.http.get(f"{live.url}/api/v1/tickets", params={"status": "DONE"},
                           headers={"Authorization": f"Bearer {live.operator}"})
    assert answer.status_code == 422, answer.text
    found = answer.json()
    assert (found["error"], found["message"], found["field"]) == ("invalid_request", "请求中有不合规的字段", "status")
    [error] = found["errors"]
    assert (error["field"], error["rule"], error["value"]) == ("status", "enum", "DONE")
    assert error["message"] == "状态：取值不在允许范围内"
    assert error["message_en"].startswith("Input should be")


def test_a_path_the_gateway_does_not_serve_is_refused_in_chinese_with_its_code(live: Live) -> None:
    answer = send(live, "zh-404", Request("GET", "/api/v1/inbound/city-12345/no-such-thing", b"", {}))
    found = json.loads(answer.body)
    assert (answer.status, found["error"]) == (404, "not_found")
    assert found["message"] == "没有这个地址：/api/v1/inbound/city-12345/no-such-thing"
    assert found["message_en"] == found["detail"] == "Not Found"  # FastAPI's own words stay beside it


def test_a_method_a_path_does_not_take_is_refused_in_chinese_naming_the_methods_it_takes(live: Live) -> None:
    answer = send(live, "zh-405", Request("DELETE", "/healthz", b"", {}))
    found = json.loads(answer.body)
    assert (answer.status, found["error"]) == (405, "method_not_allowed")
    assert found["message"] == "此地址不接受 DELETE 请求，可用的方法：GET"
    assert answer.headers["Allow"] == "GET" and found["message_en"] == "Method Not Allowed"
