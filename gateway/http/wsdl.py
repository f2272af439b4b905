"""The gateway's own WSDL (contracts/wsdl) as served per adapter: schema inlined, soap:address set to the URL."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

from lxml import etree

from adapters.wire.xml import hardened_parser

WSDL_DIR = Path(__file__).resolve().parent.parent.parent / "contracts" / "wsdl"
WSDL_FILE = WSDL_DIR / "hig-ticket-v1.wsdl"
TNS = "urn:hotline-interop-gateway:soap:v1"
BINDING = f"{{{TNS}}}TicketIntakeBinding"
SUBMIT_TICKET = f"{{{TNS}}}SubmitTicket"

_WSDL = "http://schemas.xmlsoap.org/wsdl/"
_WSDL_SOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
_XSD = "http://www.w3.org/2001/XMLSchema"


@lru_cache(maxsize=1)
def _template() -> etree._Element:
    # Both files are ours, but they are read with the same hardened parser as everything else.
    root = etree.fromstring(WSDL_FILE.read_bytes(), hardened_parser())
    types = root.find(f"{{{_WSDL}}}types")
    assert types is not None, f"{WSDL_FILE}: no wsdl:types"
    for imported in types.iter(f"{{{_XSD}}}import"):
        location = imported.get("schemaLocation")
        if location:
            schema = etree.fromstring((WSDL_DIR / location).read_bytes(), hardened_parser())
            # One document for the client to fetch: no schemaLocation pointing at a URL we do not serve.
            for child in list(types):
                types.remove(child)
            types.append(schema)
            break
    return root


def served_wsdl(address: str) -> bytes:
    """The WSDL with every soap:address pointing at `address` (the adapter's own SOAP endpoint)."""
    root = copy.deepcopy(_template())
    for node in root.iter(f"{{{_WSDL_SOAP}}}address"):
        node.set("location", address)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
