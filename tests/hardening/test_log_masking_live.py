"""Personal data is masked in the served gateway's log lines, JSON and plain text alike (logging.json_lines).

A refused SOAP push logs its reason, and the reason quotes what the partner sent: a wsu:Created holding a
phone number, an ID number, an e-mail address and a `contact_name=` pair stands for any echoed value.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from adapters.wire.envelope import SOAP11_ENV
from adapters.wire.wsse import WSU, username_token
from gateway.http.wsdl import TNS
from tests.hardening.live_gateway import PROVINCE, GatewayProcess, running, serve, write_config

SOAP_USER = "gz-12345"
PHONE, ID_NUMBER, EMAIL, NAME = "13985512345", "52260119800101002X", "zhang.guifen@example.com", "张桂芬"
ECHOED = f"电话{PHONE} 身份证{ID_NUMBER} {EMAIL} contact_name={NAME}"


@pytest.fixture(scope="module", params=[True, False], ids=["json-lines", "plain-text"])
def gateway(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    files = write_config(tmp_path_factory.mktemp("logs"), workers=False, pollers=False, json_lines=request.param)
    with running(serve(files)) as process:
        yield process


def _push_with_created(gateway: GatewayProcess, created: str) -> httpx.Response:
    password = gateway.files.credentials["PARTNER_PROVINCE12345_INBOUND_PASSWORD"]
    token = username_token(SOAP_USER, password)
    found = token.find(f".//{{{WSU}}}Created")
    assert found is not None
    found.text = created
    security = etree.tostring(token, encoding="unicode")
    body = (f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Header>{security}</soap:Header><soap:Body>'
            f'<SubmitTicket xmlns="{TNS}"><order><infoid>X-1</infoid></order></SubmitTicket></soap:Body>'
            "</soap:Envelope>")
    return httpx.post(gateway.files.soap(PROVINCE), content=body.encode(), headers={"Content-Type": "text/xml"},
                      timeout=30, trust_env=False)


def _refusal_line(gateway: GatewayProcess) -> str:
    lines = [line for line in gateway.log_text().splitlines() if "SOAP push refused" in line]
    assert lines, gateway.tail()
    return lines[-1]


def test_an_echoed_value_is_masked_in_every_log_format(gateway: GatewayProcess) -> None:
    answer = _push_with_created(gateway, ECHOED)
    assert answer.status_code == 500 and b"MessageExpired" in answer.content
    line = _refusal_line(gateway)
    assert "MessageExpired" in line, line  # the reason is in the line (plain text used to drop every extra)
    for secret in (PHONE, ID_NUMBER, EMAIL, NAME):
        assert secret not in line, line
    assert "139****2345" in line and "522601********X" in line and "z***@example.com" in line, line
    assert "contact_name=张**" in line, line
    log = Path(gateway.log_path).read_text(encoding="utf-8")
    assert PHONE not in log and ID_NUMBER not in log

