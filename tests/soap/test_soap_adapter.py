"""The `soap` adapter kind against the provincial 12345 simulator: pull, acknowledge, write back, fail well."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from adapters.base import PartnerUnavailable
from adapters.loading import parse_adapter_config
from adapters.registry import default_registry
from adapters.soap import FAULT_CLIENT, FAULT_SERVER, REQUEST_INVALID, SoapAdapter, SoapSender, fault_class
from adapters.wire.results import ErrorClass
from contracts.delivery import ClaimedDelivery, DeliveryKind
from simulators.province12345 import Province12345, RunningProvince, run_in_thread
from tests.soap.conftest import PROVINCE_PASSWORD, PROVINCE_USER, REPO, adapter_config, polling_config


def claim(fields: dict[str, Any]) -> ClaimedDelivery:
    now = datetime.now(UTC)
    return ClaimedDelivery(delivery_id="d-1", ticket_id="t-1", destination="callback:province-12345-soap",
                           kind=DeliveryKind.CALLBACK, idempotency_key="k-1",
                           body=json.dumps(fields, ensure_ascii=False).encode(), content_type="application/json",
                           headers={}, attempts=0, created_at=now, lease_token="lease", lease_until=now)


def reply(**fields: str) -> dict[str, str]:
    return {"infoid": "GZ12345-20240315-000123", "replytype": "回单", "replycontent": "已受理，正在调解",
            "replyorg": "凯里市市场监督管理局", "isend": "0", **fields}


async def test_the_registry_builds_the_soap_kind() -> None:
    adapter = default_registry.build(adapter_config())
    assert isinstance(adapter, SoapAdapter)
    await adapter.aclose()


def test_the_demo_configuration_of_the_province_loads() -> None:
    file = REPO / "config" / "adapters" / "province-12345-soap.yaml"
    config = parse_adapter_config(file.read_text(encoding="utf-8"), file)
    adapter = SoapAdapter(config)
    assert adapter.pulls and adapter.writes_back and adapter.accepts_soap_push
    assert adapter.options.wsse is not None
    assert adapter.options.wsse.password_env == "PARTNER_PROVINCE12345_WSSE_PASSWORD"


def test_a_soap_adapter_that_polls_needs_a_wsdl() -> None:
    config = adapter_config(poll={"operation": "GetPendingOrders"})
    problems = SoapAdapter.check_config(config)
    assert any(key == ("options",) and "wsdl" in message for key, message in problems)


def test_a_soap_adapter_polls_an_operation_not_a_url() -> None:
    config = adapter_config(poll={"url": "http://127.0.0.1:1/orders"}, options={"wsdl": "x.wsdl"})
    assert any(key == ("poll", "url") for key, _ in SoapAdapter.check_config(config))


async def test_pull_brings_work_orders_as_mapping_dicts_with_a_watermark(province: RunningProvince) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        batch = await adapter.pull(None)
    finally:
        await adapter.aclose()
    assert [item.ack_token for item in batch.items] == [
        "GZ12345-20240315-000123", "GZ12345-20240318-000517", "GZ12345-20240320-000042"]
    assert batch.next_cursor == "3"
    assert batch.has_more
    report = batch.items[1].payload
    assert isinstance(report, dict)
    assert report["aim"] == "举报"
    assert len(report["attachments"]["file"]) == 2  # a repeated element is a list, per the mapping convention
    assert batch.items[0].payload["limitdays"] == "5"  # numbers stay text
    assert batch.items[0].content_type.startswith("application/xml")
    assert b"<infoid>GZ12345-20240315-000123</infoid>" in batch.items[0].raw_body


async def test_pull_after_the_watermark_brings_the_next_page(province: RunningProvince) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        first = await adapter.pull(None)
        second = await adapter.pull(first.next_cursor)
        last = await adapter.pull("6")
    finally:
        await adapter.aclose()
    assert second.items[0].ack_token == "GZ12345-20240321-000318"
    assert second.next_cursor == "6"
    assert last.next_cursor == "8" and not last.has_more


async def test_gbk_replies_are_read(province: RunningProvince) -> None:
    province.province.behaviour.response_charset = "GBK"
    adapter = SoapAdapter(polling_config(province.wsdl_url, batch_size=10))
    try:
        batch = await adapter.pull(None)
    finally:
        await adapter.aclose()
    gbk_order = next(i for i in batch.items if i.ack_token == "GZ12345-20240326-000076")
    assert gbk_order.payload["visitorname"] == "邰秀兰"
    assert "鑫、淼、犇" in gbk_order.payload["content"]


async def test_acknowledge_signs_for_the_orders(province: RunningProvince) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        batch = await adapter.pull(None)
        await adapter.acknowledge(batch.items[:2])
        again = await adapter.pull(None)
    finally:
        await adapter.aclose()
    assert province.province.acked_ids() == ["GZ12345-20240315-000123", "GZ12345-20240318-000517"]
    assert again.items[0].ack_token == "GZ12345-20240320-000042"


async def test_a_server_fault_makes_the_partner_unavailable(province: RunningProvince) -> None:
    province.province.behaviour.server_faults = 1
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        with pytest.raises(PartnerUnavailable, match="soap:Server"):
            await adapter.pull(None)
    finally:
        await adapter.aclose()


async def test_a_bare_http_error_makes_the_partner_unavailable(province: RunningProvince) -> None:
    province.province.behaviour.http_errors = 1
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        with pytest.raises(PartnerUnavailable, match="HTTP 503"):
            await adapter.pull(None)
    finally:
        await adapter.aclose()


async def test_a_wrong_password_toward_the_partner_is_reported(province: RunningProvince,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.soap.conftest import PROVINCE_PASSWORD_ENV

    monkeypatch.setenv(PROVINCE_PASSWORD_ENV, "stale-password")
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        with pytest.raises(PartnerUnavailable, match="FailedAuthentication"):
            await adapter.pull(None)
    finally:
        await adapter.aclose()


async def test_an_unreachable_wsdl_makes_the_partner_unavailable() -> None:
    adapter = SoapAdapter(polling_config("http://127.0.0.1:9/ws/order?wsdl"))
    try:
        with pytest.raises(PartnerUnavailable, match="cannot load the WSDL"):
            await adapter.pull(None)
    finally:
        await adapter.aclose()


async def test_a_slow_partner_times_out_within_the_poll_timeout() -> None:
    # The partner answers after 30 s; a timeout of 0.3 s ends the poll long before: a poll that waited would have
    # had the answer, not a TimeoutError.
    with run_in_thread(Province12345(username=PROVINCE_USER, password=PROVINCE_PASSWORD), delay_seconds=30) as slow:
        adapter = SoapAdapter(polling_config(slow.wsdl_url, timeout=0.3))
        try:
            await adapter.start()
            with pytest.raises(PartnerUnavailable, match="TimeoutError"):
                await adapter.pull(None)
        finally:
            await adapter.aclose()


async def test_reply_order_reaches_the_province_in_its_own_codes(province: RunningProvince) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    sender = adapter.callback_sender()
    assert isinstance(sender, SoapSender)
    try:
        result = await sender.send(claim(reply(replytype="办结", isend="1")))
    finally:
        await adapter.aclose()
    assert result.status_code == 200 and result.error_class is None
    assert "成功" in (result.body or "")
    (recorded,) = province.province.replies_for("GZ12345-20240315-000123")
    assert recorded.type == "办结"
    assert recorded.fields["isend"] == "1"
    assert recorded.fields["replyorg"] == "凯里市市场监督管理局"


async def test_a_client_fault_on_write_back_is_permanent(province: RunningProvince) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        result = await adapter.callback_sender().send(claim(reply(infoid="GZ12345-NO-SUCH-ORDER")))  # type: ignore[union-attr]
    finally:
        await adapter.aclose()
    assert (result.status_code, result.error_class) == (400, FAULT_CLIENT)
    assert "工单 'GZ12345-NO-SUCH-ORDER' 不存在" in (result.body or "")  # the province answers in Chinese


async def test_a_server_fault_on_write_back_is_retried(province: RunningProvince) -> None:
    province.province.behaviour.server_faults = 1
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        result = await adapter.callback_sender().send(claim(reply()))  # type: ignore[union-attr]
    finally:
        await adapter.aclose()
    assert (result.status_code, result.error_class) == (500, FAULT_SERVER)


async def test_a_bare_503_on_write_back_is_retried_as_http_503(province: RunningProvince) -> None:
    province.province.behaviour.http_errors = 1
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        result = await adapter.callback_sender().send(claim(reply()))  # type: ignore[union-attr]
    finally:
        await adapter.aclose()
    assert (result.status_code, result.error_class) == (503, "http_503")


async def test_fields_the_operation_does_not_declare_are_a_permanent_request_error(
        province: RunningProvince) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        result = await adapter.callback_sender().send(claim(reply(handler_phone="13800000000")))  # type: ignore[union-attr]
    finally:
        await adapter.aclose()
    assert (result.status_code, result.error_class) == (400, REQUEST_INVALID)
    assert "handler_phone" in (result.body or "")
    assert province.province.replies_for() == []


async def test_a_write_back_timeout_is_retried() -> None:
    # The partner answers after 30 s; a timeout of 0.3 s ends the poll long before (bound: a loaded machine).
    with run_in_thread(Province12345(username=PROVINCE_USER, password=PROVINCE_PASSWORD), delay_seconds=30) as slow:
        config = polling_config(slow.wsdl_url)
        data = config.model_dump()
        data["callback"]["timeout"] = {"connect": 0.3, "total": 0.3}
        adapter = SoapAdapter(type(config).model_validate(data))
        try:
            result = await adapter.callback_sender().send(claim(reply()))  # type: ignore[union-attr]
        finally:
            await adapter.aclose()
    assert result.status_code is None
    assert result.error_class in (ErrorClass.TIMEOUT, "timeout")


@pytest.mark.parametrize(("code", "expected"), [
    ("soap:Client", FAULT_CLIENT), ("soap-env:Client.Authentication", FAULT_CLIENT), ("Sender", FAULT_CLIENT),
    ("wsse:FailedAuthentication", FAULT_CLIENT), ("{http://schemas.xmlsoap.org/soap/envelope/}Client", FAULT_CLIENT),
    ("soap:Server", FAULT_SERVER), ("Receiver", FAULT_SERVER), (None, FAULT_SERVER), ("x:Whatever", FAULT_SERVER),
])
def test_fault_codes_are_classed_client_or_server(code: str | None, expected: str) -> None:
    assert fault_class(code) == expected
