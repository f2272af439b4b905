"""SOAP Faults as the gateway answers them: the faultstring in Chinese, its English in <detail><SubmitTicketFault>."""

from __future__ import annotations

from lxml import etree

from adapters.wire.envelope import SoapFault, serialize
from gateway.http.wsdl import TNS

SUBMIT_TICKET_FAULT = f"{{{TNS}}}SubmitTicketFault"


def fault_detail(message_en: str) -> etree._Element:
    """The detail every Fault of the gateway's carries: a SubmitTicketFault holding the faultstring in English
    (`messageEn`, for logs); an order that does not map adds its quarantine id and field errors."""
    detail = etree.Element(SUBMIT_TICKET_FAULT, nsmap={"hig": TNS})
    etree.SubElement(detail, f"{{{TNS}}}messageEn").text = message_en
    return detail


def fault_body(fault: SoapFault, charset: str = "UTF-8") -> bytes:
    """The Fault's envelope as bytes in `charset`; a Fault without a detail of its own is given its English."""
    if fault.detail is None:
        fault.detail = fault_detail(fault.message_en)
    return serialize(fault.envelope(), charset)
