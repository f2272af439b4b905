"""A partner's SOAP reply is read once, by the gateway's hardened reader: envelopes, Faults and HTTP errors, in
UTF-8 and GBK, through the adapter against the provincial simulator and reply by reply."""

from __future__ import annotations

from typing import Any

import pytest
from zeep.wsdl.bindings.soap import Soap11Binding

from adapters.soap import FAULT_CLIENT, FAULT_SERVER, SoapAdapter
from adapters.wire.replies import ReplyFault, UnreadableReply, read_reply
from simulators.province12345 import RunningProvince
from tests.soap.conftest import polling_config
from tests.soap.test_soap_adapter import claim, reply

ENV = "http://schemas.xmlsoap.org/soap/envelope/"


def envelope(body: str, declaration: str = "") -> str:
    return f'{declaration}<soap:Envelope xmlns:soap="{ENV}"><soap:Body>{body}</soap:Body></soap:Envelope>'


async def test_zeep_never_reads_a_reply_on_pull_acknowledge_or_write_back(
        province: RunningProvince, monkeypatch: pytest.MonkeyPatch) -> None:
    def second_reading(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("zeep parsed a reply the adapter reads itself")

    monkeypatch.setattr(Soap11Binding, "process_reply", second_reading)
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        batch = await adapter.pull(None)
        await adapter.acknowledge(batch.items[:1])
        result = await adapter.callback_sender().send(claim(reply()))  # type: ignore[union-attr]
    finally:
        await adapter.aclose()
    assert next(item.ack_token for item in batch.items) == "GZ12345-20240315-000123"
    assert province.province.acked_ids() == ["GZ12345-20240315-000123"]
    assert (result.status_code, result.error_class) == (200, None)


async def test_a_gbk_write_back_answer_is_recorded_readable(province: RunningProvince) -> None:
    province.province.behaviour.response_charset = "GBK"
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        result = await adapter.callback_sender().send(claim(reply()))  # type: ignore[union-attr]
    finally:
        await adapter.aclose()
    assert (result.status_code, result.error_class) == (200, None)
    assert "成功" in (result.body or "")


async def test_gbk_faults_on_write_back_keep_their_class(province: RunningProvince) -> None:
    province.province.behaviour.response_charset = "GBK"
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    try:
        refused = await adapter.callback_sender().send(claim(reply(infoid="GZ12345-NO-SUCH-ORDER")))  # type: ignore[union-attr]
        province.province.behaviour.server_faults = 1
        failed = await adapter.callback_sender().send(claim(reply()))  # type: ignore[union-attr]
    finally:
        await adapter.aclose()
    assert (refused.status_code, refused.error_class) == (400, FAULT_CLIENT)
    assert (failed.status_code, failed.error_class) == (500, FAULT_SERVER)


def test_a_reply_whose_charset_is_only_in_the_content_type_is_read() -> None:
    # No XML declaration: a parser reading bytes alone would take this GBK body for UTF-8 and fail.
    body = envelope("<ReplyOrderResponse><message>成功，已受理</message></ReplyOrderResponse>").encode("gbk")
    read = read_reply(200, body, "text/xml; charset=GBK")
    assert read.envelope is not None
    assert read.envelope.findtext(".//message") == "成功，已受理"
    assert "成功，已受理" in read.text


def test_a_fault_names_its_code_and_string_even_when_they_are_qualified() -> None:
    body = envelope("<soap:Fault><soap:faultcode>soap:Client</soap:faultcode>"
                    "<soap:faultstring>工单不存在</soap:faultstring></soap:Fault>",
                    '<?xml version="1.0" encoding="GBK"?>').encode("gbk")
    with pytest.raises(ReplyFault) as fault:
        read_reply(500, body, "text/xml")
    assert (fault.value.code, fault.value.message, fault.value.status_code) == ("soap:Client", "工单不存在", 500)


def test_an_envelope_under_an_error_status_is_a_fault_without_a_code() -> None:
    with pytest.raises(ReplyFault) as fault:
        read_reply(500, envelope("<Whatever/>").encode(), "text/xml")
    assert fault.value.code is None


@pytest.mark.parametrize(("status", "body", "said"), [
    (503, b"", "no content"),
    (503, b"Service Unavailable", "not well-formed"),
    (200, b"<html><body>login</body></html>", "not a SOAP 1.1 Envelope"),
    (200, b'<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', "DOCTYPE"),
])
def test_what_is_no_envelope_is_unreadable_with_its_status(status: int, body: bytes, said: str) -> None:
    with pytest.raises(UnreadableReply, match=said) as error:
        read_reply(status, body, "text/xml")
    assert error.value.status_code == status


def test_an_empty_accepted_reply_is_no_envelope_and_no_error() -> None:
    read = read_reply(202, b"", None)
    assert (read.status_code, read.envelope, read.text) == (202, None, "")
