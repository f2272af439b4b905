"""SOAP push intake as a partner sees it: a zeep client on the served WSDL, WS-Security digest, Faults."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from lxml import etree
from zeep.exceptions import Fault
from zeep.wsse.username import UsernameToken

from adapters.soap import SoapAdapter
from gateway.http.soap import SoapContext, soap_router
from gateway.http.wsdl import TNS
from gateway.store.sqlite import SqliteStore
from gateway.tickets.intake import IntakeService
from tests.soap.conftest import (
    ADAPTER_ID,
    MAX_BODY,
    PARTNER_PASSWORD,
    PARTNER_PASSWORD_ENV,
    PARTNER_USER,
    Gateway,
    adapter_config,
    fixture_order,
    serve,
    zeep_client,
)


def token(password: str = PARTNER_PASSWORD, **kwargs: object) -> UsernameToken:
    return UsernameToken(PARTNER_USER, password, use_digest=True, **kwargs)


async def test_served_wsdl_points_zeep_at_the_adapters_own_endpoint(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), token())
    try:
        assert call.address == gateway.soap_url()
    finally:
        await call.aclose()


async def test_wsdl_of_an_unknown_adapter_is_404(gateway: Gateway) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(gateway.wsdl_url("no-such-adapter"))
    assert response.status_code == 404


async def test_get_without_wsdl_query_explains_itself(gateway: Gateway) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(gateway.soap_url())
    assert response.status_code == 400
    assert "?wsdl" in response.text


async def test_zeep_submits_a_work_order_created_then_repeat(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), token())
    try:
        first = await call.proxy.SubmitTicket(order=fixture_order("01"))
        second = await call.proxy.SubmitTicket(order=fixture_order("01"))
    finally:
        await call.aclose()
    assert first.status == "created"
    assert first.ticket_id if hasattr(first, "ticket_id") else first.ticketId
    assert second.status == "repeat"
    assert second.ticketId == first.ticketId
    ticket = await gateway.store.get_ticket(first.ticketId)
    assert ticket is not None
    assert ticket.source.source_ticket_no == "GZ12345-20240315-000123"
    assert ticket.complainant is not None and ticket.complainant.name == "杨秀英"


async def test_stored_raw_payload_is_the_order_without_the_security_header(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), token())
    try:
        result = await call.proxy.SubmitTicket(order=fixture_order("01"))
    finally:
        await call.aclose()
    raw = await gateway.store.get_raw_payload(result.ticketId)
    assert raw is not None
    body, content_type = raw
    assert content_type.startswith("application/xml")
    root = etree.fromstring(body)
    assert etree.QName(root).localname == "order"
    assert b"PasswordDigest" not in body and b"Nonce" not in body
    assert "山里红酸汤火锅".encode() in body


async def test_an_order_for_another_office_is_returned_with_the_reason(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), token())
    try:
        result = await call.proxy.SubmitTicket(order=fixture_order("04"))  # 建议: not a 12315 matter
    finally:
        await call.aclose()
    assert result.status == "returned"
    assert result.ticketId is None
    assert result.returnReasonCode == "1"
    assert "建议" in result.returnReason
    assert await gateway.store.get_quarantined(result.quarantineId) is not None


async def test_unmappable_order_is_a_client_fault_with_field_errors_and_quarantine_id(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), token())
    try:
        with pytest.raises(Fault) as caught:
            await call.proxy.SubmitTicket(order=fixture_order("06"))  # phone "12345", time 2024/13/45 25:61
    finally:
        await call.aclose()
    fault = caught.value
    assert fault.code == "soap:Client"
    assert "已隔离待处理" in fault.message and "投诉举报人联系电话：不是有效的电话号码" in fault.message
    detail = fault.detail[0]
    assert etree.QName(detail).localname == "SubmitTicketFault"
    quarantine_id = detail.findtext(f"{{{TNS}}}quarantineId")
    fields = [e.findtext(f"{{{TNS}}}field") for e in detail.iter(f"{{{TNS}}}fieldError")]
    assert fields, "every field error is listed in the detail"
    assert any(f and f.startswith("complainant.phone") for f in fields)
    kept = await gateway.store.get_quarantined(quarantine_id)
    assert kept is not None and kept.adapter_id == ADAPTER_ID
    assert b"GZ12345-20240323-001011" in kept.body


async def test_wrong_password_is_failed_authentication(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), token(password="not-the-password"))
    try:
        with pytest.raises(Fault) as caught:
            await call.proxy.SubmitTicket(order=fixture_order("01"))
    finally:
        await call.aclose()
    assert caught.value.code == "soap:Client"
    assert caught.value.message.startswith("wsse:FailedAuthentication")


async def test_wrong_username_is_failed_authentication(gateway: Gateway) -> None:
    wsse = UsernameToken("someone-else", PARTNER_PASSWORD, use_digest=True)
    call = await zeep_client(gateway.wsdl_url(), wsse)
    try:
        with pytest.raises(Fault, match="wsse:FailedAuthentication"):
            await call.proxy.SubmitTicket(order=fixture_order("01"))
    finally:
        await call.aclose()


async def test_clear_text_password_is_refused(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), UsernameToken(PARTNER_USER, PARTNER_PASSWORD))
    try:
        with pytest.raises(Fault, match="须用密码摘要 PasswordDigest"):
            await call.proxy.SubmitTicket(order=fixture_order("01"))
    finally:
        await call.aclose()


async def test_missing_security_header_is_a_fault(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), None)
    try:
        with pytest.raises(Fault) as caught:
            await call.proxy.SubmitTicket(order=fixture_order("01"))
    finally:
        await call.aclose()
    assert caught.value.code == "soap:Client"
    assert "wsse:Security" in caught.value.message


async def test_stale_created_is_refused(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), token(created=datetime.now(UTC) - timedelta(minutes=6)))
    try:
        with pytest.raises(Fault, match="已过期"):
            await call.proxy.SubmitTicket(order=fixture_order("01"))
    finally:
        await call.aclose()


async def test_created_far_in_the_future_is_refused(gateway: Gateway) -> None:
    call = await zeep_client(gateway.wsdl_url(), token(created=datetime.now(UTC) + timedelta(minutes=10)))
    try:
        with pytest.raises(Fault, match="晚于网关当前时间"):
            await call.proxy.SubmitTicket(order=fixture_order("01"))
    finally:
        await call.aclose()


async def test_replayed_nonce_is_refused(gateway: Gateway) -> None:
    fixed = token(nonce="same-nonce-twice", created=datetime.now(UTC))
    call = await zeep_client(gateway.wsdl_url(), fixed)
    try:
        first = await call.proxy.SubmitTicket(order=fixture_order("01"))
        with pytest.raises(Fault, match="Nonce 重复"):
            await call.proxy.SubmitTicket(order=fixture_order("02"))
    finally:
        await call.aclose()
    assert first.status == "created"
    nonce = base64.b64encode(b"same-nonce-twice").decode()
    assert not await gateway.store.remember_nonce(f"wsse:{ADAPTER_ID}", nonce, 60)


async def test_a_failed_authentication_does_not_burn_the_nonce(gateway: Gateway) -> None:
    created = datetime.now(UTC)
    wrong = await zeep_client(gateway.wsdl_url(), token("wrong", nonce="nonce-after-a-typo", created=created))
    right = await zeep_client(gateway.wsdl_url(), token(nonce="nonce-after-a-typo", created=created))
    try:
        with pytest.raises(Fault, match="FailedAuthentication"):
            await wrong.proxy.SubmitTicket(order=fixture_order("01"))
        result = await right.proxy.SubmitTicket(order=fixture_order("01"))
    finally:
        await wrong.aclose()
        await right.aclose()
    assert result.status == "created"


async def test_faults_travel_as_http_500_with_a_soap_envelope(gateway: Gateway) -> None:
    envelope = (f'<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
                f'<SubmitTicket xmlns="{TNS}"><order><infoid>x</infoid></order></SubmitTicket>'
                f"</soap:Body></soap:Envelope>")
    async with httpx.AsyncClient() as http:
        response = await http.post(gateway.soap_url(), content=envelope.encode(),
                                   headers={"Content-Type": "text/xml; charset=utf-8"})
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/xml")
    root = etree.fromstring(response.content)
    assert root.findtext(".//faultcode") == "soap:Client"


async def test_an_adapter_whose_password_is_not_configured_answers_a_server_fault(
        store: SqliteStore, intake: IntakeService, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARTNER_PASSWORD_ENV)
    context = SoapContext.build({ADAPTER_ID: SoapAdapter(adapter_config())}, intake, store.remember_nonce, MAX_BODY,
                                strict=False)
    app = FastAPI()
    app.state.soap = context
    app.include_router(soap_router())
    async with serve(app) as url:
        call = await zeep_client(f"{url}/soap/{ADAPTER_ID}?wsdl", token())
        try:
            with pytest.raises(Fault) as caught:
                await call.proxy.SubmitTicket(order=fixture_order("01"))
        finally:
            await call.aclose()
    assert caught.value.code == "soap:Server"
    assert "请告知网关的运维人员" in caught.value.message  # Chinese first: tell the operators
