"""The served WSDL keeps its documentation (the hardened parser drops comments, so none of it may live in one): the
WS-Security requirements as text and as a WS-SecurityPolicy assertion, the Fault conventions, and the Chinese
meaning of every order field, fetched from the running gateway."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import zeep
from lxml import etree

from tests.hardening.live_gateway import PROVINCE, running, serve, write_config

WSDL = "http://schemas.xmlsoap.org/wsdl/"
XSD = "http://www.w3.org/2001/XMLSchema"
WSP = "http://www.w3.org/ns/ws-policy"
SP = "http://docs.oasis-open.org/ws-sx/ws-securitypolicy/200702"
# The order's fields as the provincial 12345 system names them (DESIGN.md, partner system 1), written out here.
ORDER_FIELDS = ["infoid", "visittime", "way", "aim", "questiontype", "title", "content", "request", "limittime",
                "limitdays", "isend", "visitorname", "sex", "idcard", "mobilephone", "visitoraddress",
                "questionarea", "eventaddress", "objectname", "objectcode", "objectaddress", "urgentlevel", "addorg",
                "ispub", "attachments"]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, etree._Element]]:
    files = write_config(tmp_path_factory.mktemp("wsdl"), workers=False, pollers=False)
    with running(serve(files)):
        url = f"{files.soap(PROVINCE)}?wsdl"
        answer = httpx.get(url, timeout=30, trust_env=False)
        assert answer.status_code == 200
        yield url, etree.fromstring(answer.content)


def _documentation(root: etree._Element) -> str:
    return " ".join(" ".join(d.itertext()) for d in root.findall(f"{{{WSDL}}}documentation"))


def test_the_security_requirements_are_documented(served: tuple[str, etree._Element]) -> None:
    text = _documentation(served[1])
    for phrase in ("UsernameToken", "PasswordDigest", "Base64(SHA-1(nonce + created + password))", "5 minutes",
                   "Nonce never used before"):
        assert phrase in text, phrase


def test_the_fault_conventions_are_documented(served: tuple[str, etree._Element]) -> None:
    text = _documentation(served[1])
    for phrase in ("soap:Client", "soap:Server", "HTTP 500", "413", "408", "wsse:FailedAuthentication",
                   "SubmitTicketFault"):
        assert phrase in text, phrase


def test_the_binding_carries_a_username_token_digest_policy(served: tuple[str, etree._Element]) -> None:
    root = served[1]
    binding = root.find(f"{{{WSDL}}}binding")
    assert binding is not None
    reference = binding.find(f"{{{WSP}}}PolicyReference")
    assert reference is not None
    policy_id = reference.get("URI", "").lstrip("#")
    policies = [p for p in root.iter(f"{{{WSP}}}Policy") if policy_id in p.attrib.values()]
    assert len(policies) == 1
    token = policies[0].find(f".//{{{SP}}}UsernameToken")
    assert token is not None and token.find(f".//{{{SP}}}HashPassword") is not None


@pytest.mark.parametrize("field", ORDER_FIELDS)
def test_every_order_field_says_what_it_means_in_chinese(served: tuple[str, etree._Element], field: str) -> None:
    order = served[1].find(f".//{{{XSD}}}complexType[@name='Order']")
    assert order is not None
    element = order.find(f".//{{{XSD}}}element[@name='{field}']")
    assert element is not None, field
    text = "".join(element.findtext(f"{{{XSD}}}annotation/{{{XSD}}}documentation") or "")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text), (field, text)


def test_zeep_still_reads_the_documented_wsdl(served: tuple[str, etree._Element]) -> None:
    client = zeep.Client(served[0])
    assert "SubmitTicket" in dir(client.service)
