"""Behind the reverse proxy of docs/deployment.md (nginx terminating TLS on the same machine, the gateway trusting
FORWARDED_ALLOW_IPS=127.0.0.1): partners are given https addresses, and sign-in throttling counts the client's
address, not the proxy's. The proxy here is the test itself, sending the headers nginx's configuration sets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from lxml import etree

from gateway.ops.throttle import MAX_FAILURES
from tests.hardening.live_gateway import PROVINCE, GatewayFiles, running, serve, write_config

HOST = "hig.example.gov.cn"
WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayFiles]:
    files = write_config(tmp_path_factory.mktemp("proxied"), workers=False)
    files.env["FORWARDED_ALLOW_IPS"] = "127.0.0.1"  # the unit's Environment= line
    with running(serve(files)):
        yield files


def _proxied(client: str, *, proto: str = "https") -> dict[str, str]:
    """The headers nginx sets (proxy_set_header Host / X-Forwarded-For / X-Forwarded-Proto) for `client`."""
    return {"Host": HOST, "X-Forwarded-For": client, "X-Forwarded-Proto": proto}


def _soap_address(wsdl: bytes) -> str:
    [address] = etree.fromstring(wsdl).iter(f"{{{WSDL_SOAP}}}address")
    return str(address.get("location"))


def test_the_wsdl_behind_the_proxy_gives_partners_the_https_address(gateway: GatewayFiles) -> None:
    proxied = httpx.get(f"{gateway.soap(PROVINCE)}?wsdl", headers=_proxied("203.0.113.20"), trust_env=False,
                        timeout=30)
    assert proxied.status_code == 200, proxied.text
    assert _soap_address(proxied.content) == f"https://{HOST}/soap/{PROVINCE}"
    direct = httpx.get(f"{gateway.soap(PROVINCE)}?wsdl", trust_env=False, timeout=30)  # on loopback, no proxy
    assert _soap_address(direct.content) == gateway.soap(PROVINCE)


def _sign_in(http: httpx.Client, token: str, headers: dict[str, str]) -> httpx.Response:
    return http.post("/ops/login", data={"token": token, "next": "/ops"}, headers=headers)


def test_sign_in_throttling_counts_the_forwarded_client_not_the_proxy(gateway: GatewayFiles) -> None:
    guesser, colleague = "203.0.113.7", "203.0.113.8"
    with httpx.Client(base_url=gateway.url, trust_env=False, timeout=30, follow_redirects=False) as http:
        for n in range(MAX_FAILURES):
            assert _sign_in(http, f"guess-{n}", _proxied(guesser)).status_code == 401
        assert _sign_in(http, "guess-again", _proxied(guesser)).status_code == 429
        # A forged first entry does not help: nginx appends the address it saw, and that one counts.
        assert _sign_in(http, "guess-again", _proxied(f"198.51.100.1, {guesser}")).status_code == 429
        # Everyone else comes through the same proxy (127.0.0.1) and is not held up by the guesser.
        assert _sign_in(http, "typo", _proxied(colleague)).status_code == 401
        signed_in = _sign_in(http, gateway.ops_tokens["viewer"], _proxied(colleague))
        assert signed_in.status_code == 303
        assert "secure" in signed_in.headers["set-cookie"].lower()  # the browser reached the proxy over https


def test_the_proxy_settings_are_the_ones_the_deployment_guide_gives() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text(encoding="utf-8")
    for line in ("Environment=FORWARDED_ALLOW_IPS=127.0.0.1", "proxy_set_header Host $host;",
                 "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                 "proxy_set_header X-Forwarded-Proto $scheme;", "proxy_pass http://127.0.0.1:8315;"):
        assert line in guide, line
