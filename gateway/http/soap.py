"""SOAP push intake: `POST /soap/{adapter_id}` (SubmitTicket, WS-Security digest) and its WSDL at `?wsdl`."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import APIRouter, Request, Response
from lxml import etree

from adapters.wire.envelope import SoapFault, build_envelope, content_type, read_envelope, serialize, xml_safe
from adapters.wire.wsse import SECURITY, verify_username_token
from adapters.wire.xml import parse_xml
from contracts.errors import FieldError
from gateway.http.contexts import IntakeOutcomeView, SoapContext
from gateway.http.deps import Soap
from gateway.http.fast_path import PushRoute
from gateway.http.faults import fault_body, fault_detail
from gateway.http.inbound import OUTCOME_UNKNOWN, OUTCOME_UNKNOWN_ZH
from gateway.http.limits import HttpRefusal, read_limited
from gateway.http.wsdl import SUBMIT_TICKET, TNS, served_wsdl
from mapping.payload import PayloadError, xml_to_dict

log = logging.getLogger(__name__)

SOAP_PATH = "/soap/{adapter_id}"
RAW_CONTENT_TYPE = "application/xml; charset=UTF-8"
_FAULT_ERRORS_SHOWN = 5

def _fault_response(fault: SoapFault, charset: str = "UTF-8") -> Response:
    return Response(fault_body(fault, charset), status_code=fault.http_status,
                    headers={"Content-Type": content_type(charset)})


async def _read_limited(request: Request, limit: int) -> bytes:
    """The body within the size limit; an oversize or malformed length is a Client fault (413/400)."""
    try:
        return await read_limited(request, limit)
    except HttpRefusal as refusal:
        raise refusal.fault() from refusal


def _element(parent: etree._Element, name: str, text: object) -> None:
    if text is not None:
        etree.SubElement(parent, f"{{{TNS}}}{name}").text = xml_safe(str(text), 4000)


def submit_ticket_response(outcome: IntakeOutcomeView) -> etree._Element:
    """The SubmitTicketResponse for a stored, held for review, or returned order (status says which)."""
    response = etree.Element(f"{{{TNS}}}SubmitTicketResponse", nsmap={"hig": TNS})
    _element(response, "ticketId", outcome.ticket_id)
    _element(response, "status", outcome.kind)
    _element(response, "followUp", outcome.follow_up)
    if outcome.kind == "returned":
        _element(response, "quarantineId", outcome.quarantine_id)
        returned = getattr(outcome, "returned", None)
        code = getattr(returned, "reason_code", None)
        _element(response, "returnReasonCode", getattr(code, "value", code))
        _element(response, "returnReason", getattr(returned, "reason", None))
    return response


def unmappable_fault(quarantine_id: str | None, errors: Sequence[FieldError]) -> SoapFault:
    """A Client fault for an order that does not map: every field error in <detail>, the first few in the text."""
    shown, more = errors[:_FAULT_ERRORS_SHOWN], len(errors) - _FAULT_ERRORS_SHOWN
    en = (f"the order does not map to the national standard; it is kept in quarantine (quarantine id "
          f"{quarantine_id}): " + "; ".join(f"{e.field}: {e.message}" for e in shown)
          + (f" (and {more} more)" if more > 0 else ""))
    detail = fault_detail(xml_safe(en))
    _element(detail, "quarantineId", quarantine_id)
    for error in errors:
        item = etree.SubElement(detail, f"{{{TNS}}}fieldError")
        _element(item, "field", error.field)
        _element(item, "rule", error.rule)
        _element(item, "message", error.message_zh)
        _element(item, "messageEn", error.message)
        _element(item, "value", error.value)
        _element(item, "sourcePath", error.source_path)
    zh = (f"工单不符合全国12315数据标准，已隔离待处理（隔离编号 {quarantine_id}）："
          + "；".join(e.message_zh for e in shown) + (f"（另有 {more} 项）" if more > 0 else ""))
    return SoapFault.client(en, zh=zh, detail=detail)


def _wants_wsdl(request: Request) -> bool:
    return any(key.lower() == "wsdl" for key in request.query_params)


async def answer_soap_push(context: SoapContext, adapter_id: str, request: Request) -> Response:
    """The answer to one SOAP push: read and parse the envelope within its limits, check the UsernameToken,
    take the order; a SOAP Fault for anything wrong.

    As SOAP 1.1 has it: a result is HTTP 200; every Fault is HTTP 500 with faultcode soap:Client (the caller must
    change the request: bad XML, DTD, authentication, unknown operation, an order that does not map) or
    soap:Server (the gateway could not store the ticket: retry). Two refusals come before any SOAP processing and
    keep their HTTP status, with a Fault body a SOAP client still reads: 404 for an adapter that takes no SOAP
    pushes, 413 for an oversize body."""
    charset = "UTF-8"
    if not context.takes_pushes(adapter_id):
        named = xml_safe(adapter_id[:64])
        return _fault_response(SoapFault.client(f"no adapter {named!r} takes SOAP pushes at this gateway",
                                                zh=f"本网关没有接收 SOAP 推送的对接系统 {named!r}", http_status=404))
    policy = context.policies.get(adapter_id)
    if policy is None:
        return _fault_response(SoapFault.server(f"adapter {adapter_id!r} has no usable credentials configured; "
                                                "tell the gateway's operators",
                                                zh=f"对接系统 {adapter_id!r} 没有配置可用的凭据；请告知网关的运维人员"))
    header_type = request.headers.get("content-type")
    try:
        body = await _read_limited(request, context.max_body_bytes)
        root, decoded = parse_xml(body, header_type)
        charset = decoded.answer_charset
        envelope = read_envelope(root, understood={SECURITY})

        async def remember(nonce: str, ttl: float) -> bool:
            return await context.remember_nonce(f"wsse:{adapter_id}", nonce, ttl)

        await verify_username_token(envelope.header, policy, remember, now=context.clock())
        order = _order_of(envelope.body_child)
        try:
            payload = xml_to_dict(order)
        except PayloadError as err:
            raise SoapFault.client(f"the order cannot be read: {err}", zh=f"无法读取工单：{err}") from err
        # Kept as the raw payload: the order as received, without the Security header (its digest would
        # let anyone who reads raw payloads guess the password offline).
        raw = etree.tostring(order, xml_declaration=True, encoding="UTF-8")
        outcome = await context.intake.accept(adapter_id, payload, raw_body=raw, content_type=RAW_CONTENT_TYPE)
    except SoapFault as fault:
        log.info("SOAP push refused", extra={"adapter_id": adapter_id, "faultcode": fault.code,
                                             "reason": fault.message_en, "status": fault.http_status})
        return _fault_response(fault, charset)
    except Exception:  # not the partner's fault; the store may have taken the ticket before failing to answer
        log.exception("SOAP push intake failed", extra={"adapter_id": adapter_id})
        return _fault_response(SoapFault.server(OUTCOME_UNKNOWN, zh=OUTCOME_UNKNOWN_ZH), charset)
    # Intake logged the outcome (stored, repeated, quarantined or returned): one line per ticket.
    if outcome.kind == "quarantined":
        return _fault_response(unmappable_fault(outcome.quarantine_id, list(outcome.errors)), charset)
    envelope_out = build_envelope(submit_ticket_response(outcome))
    return Response(serialize(envelope_out, charset), status_code=200,
                    headers={"Content-Type": content_type(charset)})


# The gateway answers SOAP pushes here without FastAPI's routing (gateway/http/fast_path.py).
SOAP_PUSH = PushRoute(SOAP_PATH, "soap", SoapContext, answer_soap_push)


def soap_router() -> APIRouter:
    """The SOAP intake routes: the WSDL, and the push (answered the same way by the fast path)."""
    router = APIRouter(tags=["soap"])

    @router.get(SOAP_PATH, summary="The WSDL of an adapter's SOAP endpoint (append ?wsdl)", response_model=None,
                openapi_extra={"parameters": [{
                    "name": "wsdl", "in": "query", "required": True, "allowEmptyValue": True,
                    "schema": {"type": "string"}, "description": "present (any value, usually none): ?wsdl"}]},
                responses={200: {"content": {"text/xml": {}}, "description": "WSDL 1.1, schema inlined"},
                           400: {"content": {"text/plain": {}}, "description": "?wsdl is missing"},
                           404: {"content": {"text/plain": {}},
                                 "description": "No adapter with this id takes SOAP pushes"}})
    async def wsdl(adapter_id: str, request: Request, context: Soap) -> Response:
        if not context.takes_pushes(adapter_id):
            return Response("本网关没有接收 SOAP 推送的此对接系统\n"
                            "no adapter with this id takes SOAP pushes at this gateway\n", status_code=404,
                            media_type="text/plain; charset=utf-8")
        if not _wants_wsdl(request):
            return Response(f"GET {request.url.path}?wsdl 返回 WSDL；SOAP 请求请用 POST 发到此地址\n"
                            f"GET {request.url.path}?wsdl returns the WSDL; SOAP requests are POSTed here\n",
                            status_code=400, media_type="text/plain; charset=utf-8")
        address = str(request.url.replace(query=""))
        return Response(served_wsdl(address), media_type="text/xml; charset=UTF-8")

    @router.post(SOAP_PATH, summary="A partner pushes one work order over SOAP 1.1 (SubmitTicket)",
                 response_model=None,
                 openapi_extra={"requestBody": {"required": True, "content": {"text/xml": {"schema": {
                     "type": "string", "description": "A SOAP 1.1 Envelope; see GET ?wsdl"}}}}},
                 responses={200: {"content": {"text/xml": {}}, "description": "SubmitTicketResponse"},
                            404: {"content": {"text/xml": {}}, "description": "Fault: no such SOAP adapter"},
                            413: {"content": {"text/xml": {}}, "description": "Fault: the body is too large"},
                            500: {"content": {"text/xml": {}}, "description": "SOAP 1.1 Fault (Client or Server)"}})
    async def submit(adapter_id: str, request: Request, context: Soap) -> Response:
        return await answer_soap_push(context, adapter_id, request)

    return router


def _order_of(request: etree._Element) -> etree._Element:
    """The order inside a SubmitTicket; a Client fault naming what was sent instead."""
    if request.tag != SUBMIT_TICKET:
        qname = etree.QName(request)
        if qname.localname == "SubmitTicket":
            raise SoapFault.client(f"SubmitTicket is in namespace {qname.namespace or '(none)'}; this endpoint "
                                   f"expects namespace {TNS}",
                                   zh=f"SubmitTicket 的命名空间是 {qname.namespace or '(none)'}；"
                                      f"此接口要求命名空间 {TNS}")
        raise SoapFault.client(f"unknown operation {qname.localname} (namespace {qname.namespace or '(none)'}); "
                               f"this endpoint offers SubmitTicket in namespace {TNS}",
                               zh=f"未知操作 {qname.localname}（命名空间 {qname.namespace or '(none)'}）；"
                                  f"此接口提供命名空间 {TNS} 中的 SubmitTicket")
    order = request.find(f"{{{TNS}}}order")
    if order is None:
        raise SoapFault.client(f"SubmitTicket holds no order element in namespace {TNS}",
                               zh=f"SubmitTicket 中没有命名空间 {TNS} 的 order 元素")
    return order
