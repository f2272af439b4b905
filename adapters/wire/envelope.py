"""SOAP 1.1 envelopes and Faults: reading a request's Header and Body, writing answers and Faults."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from lxml import etree

from adapters.errors import AdapterError

SOAP11_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
SOAP_CONTENT_TYPE = "text/xml"

FaultCode = Literal["Client", "Server", "VersionMismatch", "MustUnderstand"]


class SoapFault(AdapterError):
    """A SOAP 1.1 Fault to answer with: Client when the sender must change the request, Server otherwise.

    The faultstring (`message`) is the Chinese sentence `zh`, for the partner system and the people reading it;
    `message_en` says the same in English for logs. A stable code a partner matches on (`wsse:FailedAuthentication`,
    `wsu:MessageExpired`…) begins both.

    SOAP 1.1 (section 6.2) answers every Fault with HTTP 500; `http_status` differs only where the
    HTTP layer refuses the request before any SOAP processing (413 for an oversize body).
    """

    def __init__(self, code: FaultCode, message_en: str, *, zh: str, detail: etree._Element | None = None,
                 http_status: int = 500) -> None:
        message_en = xml_safe(message_en)
        super().__init__(message_en)
        self.code: FaultCode = code
        self.message = xml_safe(zh)
        self.message_en = message_en
        self.detail = detail
        self.http_status = http_status

    @classmethod
    def client(cls, message_en: str, *, zh: str, detail: etree._Element | None = None,
               http_status: int = 500) -> SoapFault:
        return cls("Client", message_en, zh=zh, detail=detail, http_status=http_status)

    @classmethod
    def server(cls, message_en: str, *, zh: str, detail: etree._Element | None = None) -> SoapFault:
        return cls("Server", message_en, zh=zh, detail=detail)

    def envelope(self) -> etree._Element:
        fault = etree.Element(f"{{{SOAP11_ENV}}}Fault")
        # faultcode and friends are unqualified in SOAP 1.1; the code is a QName in the envelope namespace.
        etree.SubElement(fault, "faultcode").text = f"soap:{self.code}"
        etree.SubElement(fault, "faultstring").text = self.message
        if self.detail is not None:
            etree.SubElement(fault, "detail").append(self.detail)
        return build_envelope(fault)


@dataclass(frozen=True)
class Envelope:
    """A request's SOAP Header (None when absent) and the one element in its Body."""

    header: etree._Element | None
    body_child: etree._Element

    @property
    def operation(self) -> etree.QName:
        return etree.QName(self.body_child)


def read_envelope(root: etree._Element, *, understood: Iterable[str] = ()) -> Envelope:
    """The Header and Body payload of a SOAP 1.1 Envelope, or a Fault naming what is wrong.

    Header blocks marked mustUnderstand="1" must be among `understood` (Clark names, `{ns}local`).
    """
    if root.tag == f"{{{SOAP12_ENV}}}Envelope":
        raise SoapFault("VersionMismatch", "a SOAP 1.2 Envelope was sent; this endpoint speaks SOAP 1.1 "
                        f"({SOAP11_ENV})", zh=f"收到的是 SOAP 1.2 Envelope；此接口只支持 SOAP 1.1（{SOAP11_ENV}）")
    if root.tag != f"{{{SOAP11_ENV}}}Envelope":
        en, zh = _named(root.tag)
        raise SoapFault.client(f"the document element is {en}, not a SOAP 1.1 Envelope in namespace {SOAP11_ENV}",
                               zh=f"文档根元素是 {zh}，不是命名空间 {SOAP11_ENV} 中的 SOAP 1.1 Envelope")
    header: etree._Element | None = None
    body: etree._Element | None = None
    for child in root:
        if child.tag == f"{{{SOAP11_ENV}}}Header" and header is None and body is None:
            header = child
        elif child.tag == f"{{{SOAP11_ENV}}}Body" and body is None:
            body = child
        else:
            en, zh = _named(child.tag)
            raise SoapFault.client(f"unexpected {en} in the Envelope: expected an optional Header followed by one "
                                   "Body", zh=f"Envelope 中不应有 {zh}：应为一个可选的 Header，随后一个 Body")
    if body is None:
        raise SoapFault.client("the Envelope has no Body", zh="Envelope 中没有 Body")
    payload = [child for child in body if isinstance(child.tag, str)]
    if len(payload) != 1:
        raise SoapFault.client(f"the Body must hold exactly one operation element, found {len(payload)}",
                               zh=f"Body 中必须恰好有一个操作元素，实际有 {len(payload)} 个")
    if header is not None:
        known = set(understood)
        for block in header:
            if block.get(f"{{{SOAP11_ENV}}}mustUnderstand") in ("1", "true") and block.tag not in known:
                en, zh = _named(block.tag)
                raise SoapFault("MustUnderstand", f"header block {en} is marked mustUnderstand but is not "
                                "understood here", zh=f"头部块 {zh} 标记为 mustUnderstand，但此接口不理解它")
    return Envelope(header=header, body_child=payload[0])


def build_envelope(body_child: etree._Element, header_children: Iterable[etree._Element] = ()) -> etree._Element:
    """A SOAP 1.1 Envelope (prefix `soap`) around one Body element, with optional Header blocks."""
    envelope = etree.Element(f"{{{SOAP11_ENV}}}Envelope", nsmap={"soap": SOAP11_ENV})
    blocks = list(header_children)
    if blocks:
        header = etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Header")
        header.extend(blocks)
    etree.SubElement(envelope, f"{{{SOAP11_ENV}}}Body").append(body_child)
    return envelope


def serialize(envelope: etree._Element, charset: str = "UTF-8") -> bytes:
    """The envelope as bytes with an XML declaration; characters the charset lacks become character references."""
    data = etree.tostring(envelope, xml_declaration=True, encoding=charset)
    return data if isinstance(data, bytes) else data.encode(charset)


def content_type(charset: str = "UTF-8") -> str:
    return f"{SOAP_CONTENT_TYPE}; charset={charset}"


# Characters XML 1.0 cannot carry (control characters, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_safe(text: str, limit: int = 2000) -> str:
    """Text that can go into an XML element: characters XML forbids shown as U+XXXX, at most `limit` long."""
    text = text[:limit]
    return _NOT_XML.sub(lambda m: f"U+{ord(m.group()):04X}", text)


def _named(tag: object) -> tuple[str, str]:
    """An element's name and namespace as a sentence names it, in English and in Chinese."""
    if not isinstance(tag, str):
        return "a non-element node", "非元素节点"
    qname = etree.QName(tag)
    if qname.namespace:
        return f"{qname.localname} (namespace {qname.namespace})", f"{qname.localname}（命名空间 {qname.namespace}）"
    return f"{qname.localname} (no namespace)", f"{qname.localname}（无命名空间）"
