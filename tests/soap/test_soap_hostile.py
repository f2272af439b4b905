"""Hostile bodies on the SOAP endpoint: each gets a clear Fault (or 413/404) cheaply, and the gateway keeps serving."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest
from lxml import etree

from adapters.wire.envelope import SOAP11_ENV, SOAP12_ENV
from adapters.wire.wsse import username_token
from gateway.http.wsdl import TNS
from tests.soap.conftest import MAX_BODY, PARTNER_PASSWORD, PARTNER_USER, Gateway

# CPU seconds of this process (the gateway serves on the test's own event loop) over one request: a refusal costs
# milliseconds; a parser that expanded entities or built a huge tree would cost far more. CPU, not the wall clock,
# which a loaded machine stretches.
CHEAP = 2.0

ORDER = ("<order><infoid>GZ12345-20240330-000001</infoid><visittime>2024/03/30 10:00</visittime><way>来电</way>"
         "<aim>投诉</aim><questiontype>市场监管_消费维权_商品质量</questiontype>"
         "<content>来电人反映在凯里市某商场购买的羽绒服掉毛严重，商家拒绝退货。</content><request>要求退货</request>"
         "<visitorname>张桂芬</visitorname><mobilephone>13985512345</mobilephone>"
         "<visitoraddress>凯里市大十字街道文化北路9号</visitoraddress><questionarea>凯里市</questionarea>"
         "<objectname>凯里市某商场</objectname><objectaddress>凯里市韶山南路1号</objectaddress></order>")


def envelope(body: str, *, header: str | None = None, declaration: str = "") -> str:
    """A SOAP 1.1 envelope around `body`, with a fresh UsernameToken unless a header is given."""
    if header is None:
        header = etree.tostring(username_token(PARTNER_USER, PARTNER_PASSWORD), encoding="unicode")
    return (f'{declaration}<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Header>{header}</soap:Header>'
            f"<soap:Body>{body}</soap:Body></soap:Envelope>")


def submit(order: str = ORDER) -> str:
    return f'<SubmitTicket xmlns="{TNS}">{order}</SubmitTicket>'


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


async def post(http: httpx.AsyncClient, gateway: Gateway, body: bytes, content_type: str = "text/xml; charset=utf-8",
               adapter_id: str | None = None) -> tuple[httpx.Response, float]:
    """The answer, and the CPU time this process spent on the exchange."""
    url = gateway.soap_url(adapter_id) if adapter_id is not None else gateway.soap_url()
    started = time.process_time()
    response = await http.post(url, content=body, headers={"Content-Type": content_type})
    return response, time.process_time() - started


def fault_of(response: httpx.Response) -> tuple[str, str]:
    root = etree.fromstring(response.content)
    fault = root.find(f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault")
    assert fault is not None, response.text
    return fault.findtext("faultcode") or "", fault.findtext("faultstring") or ""


async def assert_still_serving(http: httpx.AsyncClient, gateway: Gateway) -> None:
    response, _ = await post(http, gateway, envelope(submit()).encode())
    assert response.status_code == 200, response.text


async def test_a_plain_utf8_envelope_is_accepted(http: httpx.AsyncClient, gateway: Gateway) -> None:
    response, _ = await post(http, gateway, envelope(submit()).encode())
    assert response.status_code == 200
    assert etree.fromstring(response.content).findtext(f".//{{{TNS}}}status") == "created"


XXE = ('<?xml version="1.0"?><!DOCTYPE order [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
       + envelope(submit("<order><infoid>&xxe;</infoid></order>")))
EXTERNAL_DTD = ('<?xml version="1.0"?><!DOCTYPE soap:Envelope SYSTEM "http://198.51.100.7/evil.dtd">'
                + envelope(submit()))
BILLION_LAUGHS = ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
                            for i in range(1, 10))
                  + "]>" + envelope(submit("<order><infoid>&lol9;</infoid></order>")))
QUADRATIC = ('<?xml version="1.0"?><!DOCTYPE q [<!ENTITY a "' + "A" * 20_000 + '">]>'
             + envelope(submit("<order><content>" + "&a;" * 2_000 + "</content></order>")))
LOWERCASE_DOCTYPE = "<!doctype x [<!entity e 'x'>]>" + envelope(submit())


@pytest.mark.parametrize("body", [XXE, EXTERNAL_DTD, BILLION_LAUGHS, QUADRATIC, LOWERCASE_DOCTYPE],
                         ids=["xxe", "external-dtd", "billion-laughs", "quadratic-blowup", "lowercase-doctype"])
async def test_any_dtd_is_refused_before_parsing(http: httpx.AsyncClient, gateway: Gateway, body: str) -> None:
    response, cpu = await post(http, gateway, body.encode())
    assert response.status_code == 500
    code, message = fault_of(response)
    assert code == "soap:Client"
    assert "DOCTYPE" in message
    assert cpu < CHEAP
    assert b"root:" not in response.content
    await assert_still_serving(http, gateway)


async def test_a_doctype_hidden_in_utf16_is_refused(http: httpx.AsyncClient, gateway: Gateway) -> None:
    response, _ = await post(http, gateway, XXE.replace('<?xml version="1.0"?>', "").encode("utf-16"),
                             "text/xml")
    assert response.status_code == 500
    assert "DOCTYPE" in fault_of(response)[1]


async def test_declared_oversize_body_is_413_without_reading_it(http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(submit(ORDER.replace("<content>", "<content>" + "投诉" * MAX_BODY))).encode()
    response, cpu = await post(http, gateway, body)
    assert response.status_code == 413
    assert fault_of(response)[0] == "soap:Client"
    assert cpu < CHEAP


async def test_chunked_oversize_body_is_413(http: httpx.AsyncClient, gateway: Gateway) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield envelope(submit()).encode()[:200]
        for _ in range(MAX_BODY // 1024 + 2):
            yield b" " * 1024

    response = await http.post(gateway.soap_url(), content=chunks(), headers={"Content-Type": "text/xml"})
    assert response.status_code == 413
    assert "上限" in fault_of(response)[1]


async def test_truncated_body_is_a_client_fault(http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(submit()).encode()
    response, _ = await post(http, gateway, body[: len(body) // 2])
    code, message = fault_of(response)
    assert (response.status_code, code) == (500, "soap:Client")
    assert "不是格式正确的 XML" in message


async def test_empty_body_is_a_client_fault(http: httpx.AsyncClient, gateway: Gateway) -> None:
    response, _ = await post(http, gateway, b"")
    assert fault_of(response)[0] == "soap:Client"


async def test_gbk_body_from_its_xml_declaration_is_accepted_and_answered_in_gbk(
        http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(submit(), declaration='<?xml version="1.0" encoding="GBK"?>').encode("gbk")
    response, _ = await post(http, gateway, body, "text/xml")
    assert response.status_code == 200, response.content.decode("gbk", "replace")
    assert "charset=GBK" in response.headers["content-type"]
    assert etree.fromstring(response.content).findtext(f".//{{{TNS}}}status") == "created"


async def test_gbk_body_from_the_content_type_charset_is_accepted(http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(submit()).encode("gbk")
    response, _ = await post(http, gateway, body, "text/xml; charset=GBK")
    assert response.status_code == 200


async def test_gb18030_only_characters_survive_a_gbk_label(http: httpx.AsyncClient, gateway: Gateway) -> None:
    order = ORDER.replace("张桂芬", "𠮷桂芬")  # not in GBK; partners labelled "GBK" still send it (as GB18030)
    body = envelope(submit(order), declaration='<?xml version="1.0" encoding="GBK"?>').encode("gb18030")
    response, _ = await post(http, gateway, body, "text/xml")
    assert response.status_code == 200
    ticket_id = etree.fromstring(response.content).findtext(f".//{{{TNS}}}ticketId")
    ticket = await gateway.store.get_ticket(ticket_id or "")
    assert ticket is not None and ticket.complainant is not None and ticket.complainant.name == "𠮷桂芬"


async def test_a_utf8_header_over_a_gbk_body_falls_back_to_the_declaration(
        http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(submit(), declaration='<?xml version="1.0" encoding="GBK"?>').encode("gbk")
    response, _ = await post(http, gateway, body, "text/xml; charset=utf-8")
    assert response.status_code == 200


async def test_malformed_gbk_is_a_client_fault(http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(submit(), declaration='<?xml version="1.0" encoding="GBK"?>').encode("gbk")
    broken = body.replace("羽绒服".encode("gbk"), b"\x81\x20\xff")
    response, _ = await post(http, gateway, broken, "text/xml")
    code, message = fault_of(response)
    assert code == "soap:Client"
    assert "不是有效的 GBK" in message


async def test_malformed_utf8_is_a_client_fault(http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(submit()).encode().replace("羽绒服".encode(), b"\xe7\xbe")
    response, _ = await post(http, gateway, body)
    assert "不是有效的" in fault_of(response)[1]


async def test_an_unknown_charset_is_a_client_fault(http: httpx.AsyncClient, gateway: Gateway) -> None:
    response, _ = await post(http, gateway, envelope(submit()).encode(), "text/xml; charset=x-mac-klingon")
    assert "不支持的字符编码" in fault_of(response)[1]


async def test_wrong_namespace_is_a_client_fault(http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(f'<SubmitTicket xmlns="http://tempuri.org/">{ORDER}</SubmitTicket>').encode()
    response, _ = await post(http, gateway, body)
    code, message = fault_of(response)
    assert code == "soap:Client"
    assert "命名空间" in message and TNS in message


async def test_unknown_operation_is_a_client_fault(http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(f'<DeleteAllTickets xmlns="{TNS}"/>').encode()
    response, _ = await post(http, gateway, body)
    code, message = fault_of(response)
    assert code == "soap:Client"
    assert "未知操作 DeleteAllTickets" in message


async def test_soap12_envelope_is_a_version_mismatch(http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = f'<env:Envelope xmlns:env="{SOAP12_ENV}"><env:Body>{submit()}</env:Body></env:Envelope>'
    response, _ = await post(http, gateway, body.encode(), "application/soap+xml")
    assert fault_of(response)[0] == "soap:VersionMismatch"


async def test_not_an_envelope_is_a_client_fault(http: httpx.AsyncClient, gateway: Gateway) -> None:
    response, _ = await post(http, gateway, submit().encode())
    assert "中的 SOAP 1.1 Envelope" in fault_of(response)[1]


async def test_an_unknown_must_understand_header_is_refused(http: httpx.AsyncClient, gateway: Gateway) -> None:
    security = etree.tostring(username_token(PARTNER_USER, PARTNER_PASSWORD), encoding="unicode")
    header = security + f'<x:Trace xmlns:x="urn:x" xmlns:soap="{SOAP11_ENV}" soap:mustUnderstand="1"/>'
    response, _ = await post(http, gateway, envelope(submit(), header=header).encode())
    assert fault_of(response)[0] == "soap:MustUnderstand"


async def test_deep_nesting_is_refused_fast(http: httpx.AsyncClient, gateway: Gateway) -> None:
    depth = 100_000
    body = envelope(submit("<order>" + "<a>" * depth + "x" + "</a>" * depth + "</order>")).encode()
    response, cpu = await post(http, gateway, body[:MAX_BODY - 1] if len(body) >= MAX_BODY else body)
    assert response.status_code in (413, 500)
    assert fault_of(response)[0] == "soap:Client"
    assert cpu < CHEAP
    await assert_still_serving(http, gateway)


async def test_nesting_within_the_size_limit_is_refused_fast(http: httpx.AsyncClient, gateway: Gateway) -> None:
    depth = 5_000  # ~35 KB: under the size cap, over libxml2's depth limit and the mapping's
    body = envelope(submit("<order><attachments>" + "<a>" * depth + "</a>" * depth + "</attachments></order>"))
    response, cpu = await post(http, gateway, body.encode())
    assert (response.status_code, fault_of(response)[0]) == (500, "soap:Client")
    assert cpu < CHEAP


@pytest.mark.parametrize("adapter_id", ["province-12345-soap%00", "%E7%9C%81", "PROVINCE-12345-SOAP", "a" * 300,
                                        "province-12345-soap%0D%0AX-Injected:%201"])
async def test_odd_adapter_ids_are_404_faults(http: httpx.AsyncClient, gateway: Gateway, adapter_id: str) -> None:
    response, _ = await post(http, gateway, envelope(submit()).encode(), adapter_id=adapter_id)
    assert response.status_code == 404
    assert fault_of(response)[0] == "soap:Client"
    assert "x-injected" not in response.headers


async def test_path_traversal_in_the_adapter_id_matches_no_route(http: httpx.AsyncClient, gateway: Gateway) -> None:
    response, _ = await post(http, gateway, envelope(submit()).encode(), adapter_id="..%2F..%2Fetc%2Fpasswd")
    assert response.status_code == 404
    assert b"root:" not in response.content


async def test_control_characters_in_values_are_answered_safely(http: httpx.AsyncClient, gateway: Gateway) -> None:
    body = envelope(f'<Sub\u0001mit xmlns="{TNS}"/>').encode()  # not XML at all: a control character in a name
    response, _ = await post(http, gateway, body)
    assert fault_of(response)[0] == "soap:Client"
    await assert_still_serving(http, gateway)
