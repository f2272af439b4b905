"""What the load generators send: the partners' own tickets (mapping fixtures) with a fresh number each time,
so every request is a new ticket, never a repeat, and from a consumer of its own (the same consumer, shop and
matter every time would make every request a cross-line duplicate of the ones before: docs/links.md)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from adapters.wire.envelope import SOAP11_ENV
from adapters.wire.wsse import WSSE, WSU, password_digest
from contracts.identifiers.resident_id import resident_id_check_char
from gateway.http.wsdl import TNS

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "mapping" / "fixtures"
CITY_ADAPTER = "city-12345-rest"
PROVINCE_ADAPTER = "province-12345-soap"
CITY_PATH = f"/api/v1/inbound/{CITY_ADAPTER}/tickets"
SOAP_PATH = f"/soap/{PROVINCE_ADAPTER}"
BASE_CITY_PATH = "/bare/city/tickets"
BASE_PROVINCE_PATH = "/bare/province/tickets"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_DIGEST = f"{_PROFILE}#PasswordDigest"
BASE64_BINARY = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"


def _fixture(adapter: str, stem: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / adapter / f"{stem}.json").read_text(encoding="utf-8"))
    return data


CITY_TICKET = _fixture(CITY_ADAPTER, "01-food-complaint")
PROVINCE_ORDER = _fixture(PROVINCE_ADAPTER, "01-food-complaint-kaili")


def run_tag() -> str:
    """Distinguishes one run's ticket numbers from another's (stores may be shared)."""
    return uuid.uuid4().hex[:6].upper()


def consumer(tag: str, i: int) -> dict[str, str]:
    """The city fields of request i's complainant: a mobile number and a resident ID (valid check character) of
    their own, born in 凯里市 on one of 15,000 days from 1970 with one of 1,000 sequence numbers."""
    n = int(hashlib.blake2b(f"{tag}-{i}".encode(), digest_size=4).hexdigest(), 16) % 100_000_000
    first17 = f"522601{date(1970, 1, 1) + timedelta(days=i % 15_000):%Y%m%d}{i // 15_000 % 1000:03d}"
    return {"contactPhone": f"139{n:08d}", "contactIdCard": first17 + resident_id_check_char(first17)}


def city_ticket(tag: str, i: int) -> dict[str, Any]:
    """The city 12345 platform's ticket i: fixture 01 (a 投诉) under a new hotlineNo, from its own consumer."""
    return {**CITY_TICKET, "hotlineNo": f"KL12345-{tag}-{i:09d}", **consumer(tag, i)}


def city_body(tag: str, i: int) -> bytes:
    """city_ticket as the platform sends it."""
    return json.dumps(city_ticket(tag, i), ensure_ascii=False).encode("utf-8")


def province_order(tag: str, i: int) -> dict[str, Any]:
    """The provincial 12345 system's order i: fixture 01 under a new infoid, from its own consumer (the same one
    every time would make each order a cross-line duplicate of all before it, as for the city's tickets)."""
    person = consumer(tag, i)
    return {**PROVINCE_ORDER, "infoid": f"GZ12345-{tag}-{i:09d}", "mobilephone": person["contactPhone"],
            "idcard": person["contactIdCard"]}


def province_body(tag: str, i: int) -> bytes:
    """The provincial order as JSON, for the bare baseline's province route."""
    return json.dumps(province_order(tag, i), ensure_ascii=False).encode("utf-8")


def _order_xml(order: dict[str, Any]) -> str:
    return "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in order.items() if v is not None)


def soap_envelope(order: dict[str, Any], username: str, password: str, created: str) -> bytes:
    """SubmitTicket with a WS-Security UsernameToken (PasswordDigest, fresh Nonce), as a partner's client sends it."""
    nonce = os.urandom(16)
    nonce_text = base64.b64encode(nonce).decode("ascii")
    digest = password_digest(nonce, created, password)
    header = (f'<wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"><wsse:UsernameToken>'
              f"<wsse:Username>{escape(username)}</wsse:Username>"
              f'<wsse:Password Type="{PASSWORD_DIGEST}">{digest}</wsse:Password>'
              f'<wsse:Nonce EncodingType="{BASE64_BINARY}">{nonce_text}</wsse:Nonce>'
              f"<wsu:Created>{created}</wsu:Created></wsse:UsernameToken></wsse:Security>")
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP11_ENV}">'
            f"<soap:Header>{header}</soap:Header><soap:Body><SubmitTicket xmlns=\"{TNS}\"><order>"
            f"{_order_xml(order)}</order></SubmitTicket></soap:Body></soap:Envelope>").encode()
