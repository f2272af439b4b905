"""A partner's SOAP 1.1 reply, read once with the hardened parser: its envelope, or the Fault or error it carries."""

from __future__ import annotations

from dataclasses import dataclass

from lxml import etree

from adapters.errors import AdapterError
from adapters.wire.envelope import SOAP11_ENV, SoapFault
from adapters.wire.xml import parse_xml

_ENVELOPE = f"{{{SOAP11_ENV}}}Envelope"
_FAULT = f"{{{SOAP11_ENV}}}Body/{{{SOAP11_ENV}}}Fault"


@dataclass(frozen=True)
class Reply:
    """A reply that is a SOAP envelope without a Fault (or, for 201/202, nothing at all)."""

    status_code: int
    envelope: etree._Element | None  # None: an empty 201/202
    text: str  # the body as text, decoded with the charset the partner named (GBK replies stay readable)


class ReplyFault(AdapterError, RuntimeError):
    """The partner answered a SOAP Fault (or an envelope under an HTTP error status)."""

    def __init__(self, code: str | None, message: str | None, status_code: int) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status_code = status_code


class UnreadableReply(AdapterError, RuntimeError):
    """A reply that is no SOAP envelope: an HTTP error without a body, or a body that is not a SOAP 1.1 Envelope."""

    def __init__(self, status_code: int, reason: str) -> None:
        super().__init__(f"HTTP {status_code}: {reason}")
        self.status_code = status_code


def read_reply(status_code: int, content: bytes, content_type: str | None) -> Reply:
    """The reply as a Reply; ReplyFault for a Fault, UnreadableReply for anything that is not an envelope."""
    if not content:
        if status_code in (200, 201, 202):
            return Reply(status_code, None, "")
        raise UnreadableReply(status_code, "no content")
    try:
        root, decoded = parse_xml(content, content_type)
    except SoapFault as err:  # not XML, an unknown charset, a DTD: the parser's refusal says which
        raise UnreadableReply(status_code, err.message_en) from err
    if root.tag != _ENVELOPE:
        raise UnreadableReply(status_code, f"the reply's document element is {root.tag}, not a SOAP 1.1 Envelope")
    fault = root.find(_FAULT)
    if fault is not None:
        raise ReplyFault(_child_text(fault, "faultcode"), _child_text(fault, "faultstring"), status_code)
    if status_code != 200:
        raise ReplyFault(None, f"HTTP {status_code} with an envelope but no Fault", status_code)
    return Reply(status_code, root, decoded.text)


def _child_text(fault: etree._Element, local_name: str) -> str | None:
    """faultcode, faultstring: unqualified in SOAP 1.1, though some partners qualify them."""
    for child in fault:
        if isinstance(child.tag, str) and etree.QName(child).localname == local_name:
            return (child.text or "").strip() or None
    return None
