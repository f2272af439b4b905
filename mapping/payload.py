"""Partner bodies into the data a spec reads: charset-aware decoding (GBK, GB18030) and XML turned into dicts.

The XML → dict convention (what `xml_to_dict` does, and what a SOAP adapter must hand to `apply`):

- one record element (e.g. one `<order>`) becomes one dict; namespaces are dropped, keys are local names;
- an element without child elements becomes its text, exactly as sent (no trimming, numbers stay text);
  an empty or self-closing element, or one with `xsi:nil="true"`, becomes None;
- an element with child elements becomes a dict of them, recursively; text mixed between them is dropped;
- a child name that occurs more than once in one parent becomes a list in document order; a name that
  occurs once stays a single value (specs read lists with `[*]`, which takes a single value as a list of
  one, so both forms map the same);
- attributes are dropped (partners put data in elements), except `xsi:nil`.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from typing import Any

from lxml import etree

from mapping.errors import MappingError

_XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"
_CHARSET = re.compile(r"charset\s*=\s*\"?([A-Za-z0-9_\-:.]+)\"?", re.IGNORECASE)
_XML_DECLARED = re.compile(rb"^\s*<\?xml[^>]*encoding\s*=\s*[\"']([A-Za-z0-9_\-.]+)[\"']")
# GBK and GB2312 are subsets of GB18030: decoding all three with GB18030 accepts what a partner's
# "GBK" system really sends (it often emits GB18030-only characters such as 𠮷 or the euro sign).
_WIDER = {"gbk": "gb18030", "gb2312": "gb18030", "cp936": "gb18030", "x-gbk": "gb18030"}
MAX_XML_DEPTH = 64


class PayloadError(MappingError):
    """A body that cannot be read as text or as the data it claims to be."""


def charset_of(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, lower case, or None."""
    if not content_type:
        return None
    match = _CHARSET.search(content_type)
    return match.group(1).lower() if match else None


def _codec(name: str) -> str:
    name = _WIDER.get(name.lower(), name.lower())
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise PayloadError(f"unknown charset {name!r}") from None


def decode_body(body: bytes, content_type: str | None = None) -> str:
    """The text of a partner body: the Content-Type charset if given, else the XML declaration's encoding,
    else UTF-8 (a UTF-8 byte-order mark is removed). GBK and GB2312 are read as GB18030."""
    declared = charset_of(content_type)
    if declared is None:
        match = _XML_DECLARED.match(body[:200])
        declared = match.group(1).decode("ascii").lower() if match else None
    codec = _codec(declared or "utf-8")
    if codec == "utf-8" and body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8):]
    try:
        return body.decode(codec)
    except LookupError:  # a codec that is not a text encoding: zlib, base64, rot13...
        raise PayloadError(f"unknown charset {declared!r}: send UTF-8 or GBK/GB18030") from None
    except UnicodeError as err:  # UnicodeDecodeError, or a codec's own UnicodeError (punycode, idna)
        start = getattr(err, "start", 0)
        raise PayloadError(
            f"the body is not valid {declared or 'UTF-8'} at byte {start}; "
            "send charset=GBK (or GB18030) in Content-Type if that is what it is"
        ) from None


# A \uD800-\uDFFF escape: half of a surrogate pair, or, alone, a character no store or encoder can write.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _not_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_number(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999, -1e400: valid JSON syntax, but past what a double holds
        raise ValueError(f"the number {text[:40]} is out of range (beyond ±1.8e308)")
    return value


def parse_json_body(body: bytes, content_type: str | None = None) -> Any:
    """A JSON body in whatever charset the Content-Type names (RFC 8259: no NaN or Infinity, no lone surrogates,
    no number that overflows a double)."""
    text = decode_body(body, content_type)
    try:
        value = json.loads(text, parse_constant=_not_json_constant, parse_float=_finite_number)
    except (ValueError, RecursionError) as err:  # ValueError: JSONDecodeError, or an int past 4300 digits
        raise PayloadError(f"the body is not JSON: {err}") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadError("the body is not JSON that can be stored: a \\uD800-\\uDFFF escape is not part of "
                               "a surrogate pair") from None
    return value


def _parser() -> etree.XMLParser:
    # Hardened: no DTDs, no entities, no network, no huge trees.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=True, remove_pis=True)


def parse_xml(body: bytes, content_type: str | None = None) -> etree._Element:
    """The root element of an XML body, decoded by `decode_body`; a DOCTYPE is refused."""
    text = decode_body(body, content_type)
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text, count=1)  # the declared encoding no longer applies
    if "<!DOCTYPE" in text[:2000].upper():
        raise PayloadError("XML with a DOCTYPE is refused")
    try:
        return etree.fromstring(text.encode("utf-8"), _parser())
    except etree.XMLSyntaxError as err:
        raise PayloadError(f"the body is not well-formed XML: {err}") from None


def _local(tag: Any) -> str:
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""  # "{namespace}name" or "name"


def xml_to_dict(element: etree._Element) -> Any:
    """One element as data, by the convention in this module's docstring."""
    return _convert(element, 0)


def _convert(element: etree._Element, depth: int) -> Any:
    if depth > MAX_XML_DEPTH:
        raise PayloadError(f"XML nested deeper than {MAX_XML_DEPTH} elements")
    if element.get(_XSI_NIL) in ("true", "1"):
        return None
    children = [child for child in element if isinstance(child.tag, str)]
    if not children:
        return element.text if element.text else None
    out: dict[str, Any] = {}
    for child in children:
        name = _local(child.tag)
        value = _convert(child, depth + 1)
        if name in out:
            existing = out[name]
            if isinstance(existing, _Repeated):
                existing.append(value)
            else:
                out[name] = _Repeated([existing, value])
        else:
            out[name] = value
    return {key: list(value) if isinstance(value, _Repeated) else value for key, value in out.items()}


class _Repeated(list[Any]):
    """Marks a list made from repeated elements, as opposed to a value that is itself a list."""


def xml_records(body: bytes, content_type: str | None, record: str) -> list[dict[str, Any]]:
    """Every element named `record` (local name, at any depth) as a dict: the orders of a
    GetPendingOrdersResponse, or the one order of a push."""
    root = parse_xml(body, content_type)
    records = []
    for element in root.iter():
        if isinstance(element.tag, str) and _local(element.tag) == record:
            value = xml_to_dict(element)
            records.append(value if isinstance(value, dict) else {})
    return records
