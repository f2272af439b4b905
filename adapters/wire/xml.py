"""Hostile-input-safe reading of SOAP bodies: size cap, charset (UTF-8, GBK/GB18030), no DTD, no entities."""

from __future__ import annotations

import codecs
import re
import threading
from dataclasses import dataclass

from lxml import etree

from adapters.wire.envelope import SoapFault

# What a body may be encoded in, by the names partners write, and the codec that reads it. GBK and
# GB2312 are read as GB18030, their superset, so a rare character (e.g. 𠮷 in a name) never breaks a ticket.
_CODECS: dict[str, str] = {
    "utf-8": "utf-8", "utf8": "utf-8", "us-ascii": "utf-8", "ascii": "utf-8",
    "gbk": "gb18030", "gb2312": "gb18030", "gb18030": "gb18030", "cp936": "gb18030", "x-gbk": "gb18030",
    "euc-cn": "gb18030", "utf-16": "utf-16", "utf-16le": "utf-16-le", "utf-16be": "utf-16-be",
}
# The charset an answer is written in, for a body read with a GB18030-family label: the partner's own name for it
# where libxml2 (which writes the answer) knows that name, else the standard name of the same character set.
ANSWER_CHARSETS: dict[str, str] = {
    "gbk": "GBK", "x-gbk": "GBK", "cp936": "GBK", "gb2312": "GB2312", "euc-cn": "GB2312", "gb18030": "GB18030",
}
_DECLARATION = re.compile(rb"^\s*<\?xml\s[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._:\-]{1,40})[\"']")
_DECLARATION_TEXT = re.compile(r"^\s*<\?xml\s[^>]*?\?>")
_CHARSET = re.compile(r";\s*charset\s*=\s*\"?([A-Za-z0-9._:\-]{1,40})\"?", re.IGNORECASE)
# A DTD is how every entity attack (XXE, billion laughs, quadratic blow-up) starts: refuse it unparsed.
_DTD_BYTES = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)
_DTD_TEXT = re.compile(r"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)

# A SOAP message needs a handful of namespaces; tens of thousands of declarations make every copy of an element
# (lxml copies each ancestor's declarations into it) cost seconds of CPU.
MAX_NAMESPACE_DECLARATIONS = 256
_NAMESPACE_DECLARATION = re.compile(r"\sxmlns(?::[^\s=>/]+)?\s*=")

_parsers = threading.local()


def hardened_parser() -> etree.XMLParser:
    """This thread's XML parser: no entity resolution, no network, no DTD loading, libxml2's size limits on."""
    parser: etree.XMLParser | None = getattr(_parsers, "parser", None)
    if parser is None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                                 dtd_validation=False, remove_comments=True, remove_pis=True, encoding="utf-8")
        _parsers.parser = parser
    return parser


@dataclass(frozen=True)
class DecodedBody:
    """A body as text, the charset label it was read with (answer in the same) and the codec used."""

    text: str
    charset: str  # e.g. "UTF-8" or "GBK", as the partner named it
    codec: str

    @property
    def answer_charset(self) -> str:
        """The charset to answer in: the partner's GB18030-family charset (under a name the XML writer knows),
        else UTF-8."""
        return ANSWER_CHARSETS.get(self.charset.lower(), "UTF-8") if self.codec == "gb18030" else "UTF-8"


def content_type_charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, if any."""
    if not content_type:
        return None
    match = _CHARSET.search(content_type)
    return match.group(1) if match else None


def declared_encoding(body: bytes) -> str | None:
    """The encoding named in the XML declaration, if the body starts with one."""
    match = _DECLARATION.match(body[:512])
    return match.group(1).decode("ascii") if match else None


def decode_body(body: bytes, content_type: str | None) -> DecodedBody:
    """Read the body as text: BOM first, then the Content-Type charset, then the XML declaration, then UTF-8.

    RFC 7303 makes the Content-Type charset authoritative, but partners on GBK often send a UTF-8
    header over a GBK body whose declaration is right: when the header's charset does not decode the
    body and the declaration names another one that does, the declaration is used.
    """
    if body.startswith(codecs.BOM_UTF8):
        return _decode(body[len(codecs.BOM_UTF8):], "UTF-8")
    if body.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return _decode(body, "UTF-16")
    candidates: list[str] = []
    for label in (content_type_charset(content_type), declared_encoding(body)):
        if label and label.lower() not in (c.lower() for c in candidates):
            candidates.append(label)
    if not candidates:
        candidates.append("UTF-8")
    first_error: SoapFault | None = None
    for label in candidates:
        try:
            return _decode(body, label)
        except SoapFault as fault:
            first_error = first_error or fault
    assert first_error is not None
    raise first_error


def _decode(body: bytes, label: str) -> DecodedBody:
    codec = _CODECS.get(label.lower())
    if codec is None:
        raise SoapFault.client(f"unsupported character encoding {label!r}: send UTF-8 or GBK/GB18030",
                               zh=f"不支持的字符编码 {label!r}：请用 UTF-8 或 GBK/GB18030")
    try:
        text = body.decode(codec)
    except UnicodeDecodeError as err:
        raise SoapFault.client(
            f"the body is not valid {label}: byte 0x{body[err.start]:02x} at offset {err.start} cannot be read",
            zh=f"请求体不是有效的 {label}：第 {err.start} 字节处的 0x{body[err.start]:02x} 无法读取",
        ) from err
    return DecodedBody(text=text, charset=label.upper() if codec != "utf-16" else "UTF-16", codec=codec)


def _dtd_refused() -> SoapFault:
    return SoapFault.client("a DOCTYPE or ENTITY declaration is not accepted in a SOAP message",
                            zh="SOAP 消息中不接受 DOCTYPE 或 ENTITY 声明")


def parse_xml(body: bytes, content_type: str | None) -> tuple[etree._Element, DecodedBody]:
    """The document element of a body, or a Client SoapFault saying what is wrong with it.

    Any `<!DOCTYPE` or `<!ENTITY` is refused before the parser sees the body, so no entity is ever
    declared, let alone expanded; the parser itself is hardened too, in case a form slips past.
    """
    if _DTD_BYTES.search(body):
        raise _dtd_refused()
    decoded = decode_body(body, content_type)
    if _DTD_TEXT.search(decoded.text):
        raise _dtd_refused()
    text = _DECLARATION_TEXT.sub("", decoded.text, count=1)
    if text.count("xmlns") > MAX_NAMESPACE_DECLARATIONS:
        declared = len(_NAMESPACE_DECLARATION.findall(text))
        if declared > MAX_NAMESPACE_DECLARATIONS:
            raise SoapFault.client(f"the message declares {declared} XML namespaces; at most "
                                   f"{MAX_NAMESPACE_DECLARATIONS} are accepted",
                                   zh=f"消息声明了 {declared} 个 XML 命名空间；"
                                      f"最多接受 {MAX_NAMESPACE_DECLARATIONS} 个")
    if not text.strip():
        raise SoapFault.client("the body is empty: a SOAP 1.1 Envelope is expected",
                               zh="请求体为空：应为一个 SOAP 1.1 Envelope")
    try:
        root = etree.fromstring(text.encode("utf-8"), hardened_parser())
    except etree.XMLSyntaxError as err:
        raise SoapFault.client(f"the body is not well-formed XML: {err.msg}",
                               zh=f"请求体不是格式正确的 XML：{err.msg}") from err
    return root, decoded
