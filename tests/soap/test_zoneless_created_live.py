"""A wsu:Created without a time zone: UTC by default (WS-Security), Beijing time with `zoneless_created: "+08:00"`,
for a province whose system writes its wall clock without an offset; through the served gateway."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from lxml import etree

from adapters.wire.envelope import SOAP11_ENV
from adapters.wire.wsse import username_token
from gateway.http.wsdl import TNS
from tests.hardening.live_gateway import PROVINCE, GatewayFiles, running, serve, write_config

SOAP_USER = "gz-12345"
BEIJING = timezone(timedelta(hours=8))


def _order() -> str:
    number = f"GZ12345-ZONELESS-{datetime.now(UTC).strftime('%H%M%S%f')}"
    return (f"<order><infoid>{number}</infoid><visittime>2024/03/30 10:00</visittime><way>来电</way><aim>投诉</aim>"
            "<questiontype>市场监管_消费维权_商品质量</questiontype><content>在凯里市某商场购买的羽绒服掉毛严重，商家拒绝退货。"
            "</content><request>要求退货</request><visitorname>张桂芬</visitorname><mobilephone>13985512345"
            "</mobilephone><visitoraddress>凯里市大十字街道文化北路9号</visitoraddress><questionarea>凯里市"
            "</questionarea><objectname>凯里市某商场</objectname><objectaddress>凯里市韶山南路1号</objectaddress>"
            "</order>")


def _push_with_beijing_wall_clock(files: GatewayFiles) -> httpx.Response:
    wall_clock = datetime.now(BEIJING).replace(tzinfo=None).isoformat(timespec="seconds")  # "2026-12-07T03:04:05"
    token = username_token(SOAP_USER, files.credentials["PARTNER_PROVINCE12345_INBOUND_PASSWORD"],
                           created=wall_clock)
    body = (f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Header>{etree.tostring(token, encoding="unicode")}'
            f'</soap:Header><soap:Body><SubmitTicket xmlns="{TNS}">{_order()}</SubmitTicket></soap:Body>'
            "</soap:Envelope>")
    return httpx.post(files.soap(PROVINCE), content=body.encode(), headers={"Content-Type": "text/xml"},
                      timeout=30, trust_env=False)


@pytest.mark.parametrize("zoneless", [None, "+08:00"], ids=["default-utc", "beijing"])
def test_a_zoneless_created_is_read_as_configured(tmp_path: Path, zoneless: str | None) -> None:
    adapters = {PROVINCE: {"options": {"zoneless_created": zoneless}}} if zoneless else None
    files = write_config(tmp_path, workers=False, pollers=False, adapters=adapters)
    with running(serve(files)):
        answer = _push_with_beijing_wall_clock(files)
    root = etree.fromstring(answer.content)
    if zoneless is None:  # 8 hours ahead of UTC: refused, and the Fault says why
        assert answer.status_code == 500
        assert "晚于网关当前时间" in (root.findtext(f".//{{{SOAP11_ENV}}}Fault/faultstring") or "")
    else:
        assert answer.status_code == 200, answer.text
        assert root.findtext(f".//{{{TNS}}}status") == "created"
