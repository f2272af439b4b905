"""WS-Security UsernameToken digest and the hardened SOAP reading, without a server."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from lxml import etree
from zeep.wsse.username import UsernameToken

from adapters.config import MissingCredential
from adapters.soap import SoapAdapter
from adapters.wire.envelope import SOAP11_ENV, SoapFault, build_envelope, read_envelope
from adapters.wire.wsse import UsernameTokenPolicy, password_digest, username_token, verify_username_token
from adapters.wire.xml import decode_body, parse_xml
from gateway.http.soap import SoapContext
from tests.soap.conftest import PARTNER_PASSWORD_ENV, adapter_config

POLICY = UsernameTokenPolicy(username="qdn-12345", password="口令-secret")
NOW = datetime(2024, 3, 15, 1, 42, tzinfo=UTC)


class Nonces:
    def __init__(self) -> None:
        self.seen: set[str] = set()

    async def __call__(self, nonce: str, ttl: float) -> bool:
        if nonce in self.seen:
            return False
        self.seen.add(nonce)
        return True


def header_with(security: etree._Element) -> etree._Element:
    header = etree.Element(f"{{{SOAP11_ENV}}}Header")
    header.append(security)
    return header


def test_digest_is_base64_sha1_of_nonce_created_password() -> None:
    nonce, created, password = b"\x01\x02nonce", "2024-03-15T01:42:00Z", "口令"
    expected = base64.b64encode(hashlib.sha1(nonce + created.encode() + password.encode()).digest()).decode()  # noqa: S324
    assert password_digest(nonce, created, password) == expected


def test_our_digest_matches_zeeps() -> None:
    envelope = build_envelope(etree.Element("x"))
    UsernameToken("u", "口令-secret", use_digest=True, nonce="fixed", created=NOW).apply(envelope, {})
    password = envelope.find(".//{*}Password")
    created = envelope.findtext(".//{*}Created")
    assert password is not None and created is not None
    assert password.text == password_digest(b"fixed", created, "口令-secret")


async def test_a_valid_token_names_its_user() -> None:
    security = username_token(POLICY.username, POLICY.password, created=NOW)
    assert await verify_username_token(header_with(security), POLICY, Nonces(), now=NOW) == "qdn-12345"


async def test_created_exactly_at_the_age_limit_is_still_fresh() -> None:
    security = username_token(POLICY.username, POLICY.password, created=NOW - timedelta(seconds=300))
    assert await verify_username_token(header_with(security), POLICY, Nonces(), now=NOW)


async def test_created_one_second_past_the_age_limit_is_stale() -> None:
    security = username_token(POLICY.username, POLICY.password, created=NOW - timedelta(seconds=301))
    with pytest.raises(SoapFault, match="stale Created"):
        await verify_username_token(header_with(security), POLICY, Nonces(), now=NOW)


async def test_small_clock_skew_ahead_is_tolerated() -> None:
    security = username_token(POLICY.username, POLICY.password, created=NOW + timedelta(seconds=30))
    assert await verify_username_token(header_with(security), POLICY, Nonces(), now=NOW)


async def test_created_without_a_zone_is_read_as_utc() -> None:
    security = username_token(POLICY.username, POLICY.password, created="2024-03-15T01:41:00")
    assert await verify_username_token(header_with(security), POLICY, Nonces(), now=NOW)


async def test_a_created_that_is_no_date_is_refused() -> None:
    security = username_token(POLICY.username, POLICY.password, created="yesterday")
    with pytest.raises(SoapFault, match="not an xsd:dateTime"):
        await verify_username_token(header_with(security), POLICY, Nonces(), now=NOW)


async def test_a_nonce_that_is_not_base64_is_refused() -> None:
    security = username_token(POLICY.username, POLICY.password, created=NOW)
    nonce = security.find(".//{*}Nonce")
    assert nonce is not None
    nonce.text = "not base64!"
    with pytest.raises(SoapFault, match="not base64"):
        await verify_username_token(header_with(security), POLICY, Nonces(), now=NOW)


async def test_the_same_nonce_twice_is_a_replay() -> None:
    nonces = Nonces()
    token = username_token(POLICY.username, POLICY.password, nonce=b"n" * 16, created=NOW)
    await verify_username_token(header_with(token), POLICY, nonces, now=NOW)
    with pytest.raises(SoapFault, match="nonce replayed"):
        await verify_username_token(header_with(token), POLICY, nonces, now=NOW)


async def test_a_security_header_without_a_token_is_invalid_security() -> None:
    empty = etree.Element("{http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd}Security")
    with pytest.raises(SoapFault, match="wsse:InvalidSecurity"):
        await verify_username_token(header_with(empty), POLICY, Nonces(), now=NOW)


def test_read_envelope_wants_exactly_one_operation() -> None:
    envelope = build_envelope(etree.Element("a"))
    body = envelope.find(f"{{{SOAP11_ENV}}}Body")
    assert body is not None
    body.append(etree.Element("b"))
    with pytest.raises(SoapFault, match="exactly one operation"):
        read_envelope(envelope)


def test_a_body_with_no_declaration_or_charset_is_utf8() -> None:
    assert decode_body("<a>凯里</a>".encode(), None).charset == "UTF-8"


def test_a_gbk_declaration_is_read_as_gb18030() -> None:
    decoded = decode_body('<?xml version="1.0" encoding="gbk"?><a>凯里</a>'.encode("gbk"), "text/xml")
    assert (decoded.charset, decoded.codec) == ("GBK", "gb18030")
    assert "凯里" in decoded.text


def test_a_utf8_bom_is_honoured() -> None:
    root, decoded = parse_xml(b"\xef\xbb\xbf<a>\xe5\x87\xaf</a>", "text/xml; charset=GBK")
    assert root.text == "凯" and decoded.charset == "UTF-8"


def test_an_entity_reference_without_a_dtd_is_not_well_formed() -> None:
    with pytest.raises(SoapFault, match="not well-formed"):
        parse_xml(b"<a>&xxe;</a>", None)


def test_a_soap_context_refuses_to_start_without_the_partner_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PARTNER_PASSWORD_ENV)
    adapter = SoapAdapter(adapter_config())

    async def remember(scope: str, nonce: str, ttl: float) -> bool:
        return True

    with pytest.raises(MissingCredential, match=PARTNER_PASSWORD_ENV):
        SoapContext.build({"province-12345-soap": adapter}, object(), remember, 1024)  # type: ignore[arg-type]
    lenient = SoapContext.build({"province-12345-soap": adapter}, object(), remember, 1024,  # type: ignore[arg-type]
                                strict=False)
    assert "province-12345-soap" in lenient.missing and lenient.takes_pushes("province-12345-soap")
