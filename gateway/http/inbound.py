"""REST push intake: `POST /api/v1/inbound/{adapter_id}/tickets`, a partner's own JSON, authenticated and sized."""

from __future__ import annotations

import copy
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from adapters.canonical import FOLLOW_UP_KIND, canonical_follow_up_schema, canonical_push_schema
from adapters.config import digest_matches
from contracts.errors import FieldError
from gateway.http.contexts import InboundContext, IntakeOutcomeView
from gateway.http.contexts import TicketIntake as TicketIntake  # where pollers.py finds it
from gateway.http.deps import Inbound
from gateway.http.fast_path import PushRoute
from gateway.http.limits import HttpRefusal, check_declared_length, read_limited, refusal_response
from mapping.payload import PayloadError, parse_json_body

log = logging.getLogger(__name__)


INBOUND_PATH = "/api/v1/inbound/{adapter_id}/tickets"
# A canonical sender's follow-ups, beside its tickets (as the national platform's …/tickets/follow-ups).
FOLLOW_UPS_INBOUND_PATH = "/api/v1/inbound/{adapter_id}/tickets/follow-ups"
API_KEY_HEADER = "X-Api-Key"
SIGNATURE_HEADER = "X-Signature"
TIMESTAMP_HEADER = "X-Timestamp"
SIGNATURE_PREFIX = "sha256="
JSON_MEDIA_TYPES = ("application/json", "text/json")
# An adapter not configured waits for its operators (credentials set, reload): a partner asks again in 5 minutes.
NOT_CONFIGURED_RETRY_AFTER = "300"
# An intake that failed past the mapping: a store that timed out may have written the ticket all the same. The
# repeat of a push is recognised by its idempotency key, so sending it again is always safe (docs/integrators.md).
OUTCOME_UNKNOWN = ("the gateway could not confirm that the ticket was stored (it may have been); send the same "
                   "ticket again later: a repeat is recognised and answered with its ticket id, never stored twice")
OUTCOME_UNKNOWN_ZH = ("网关未能确认工单已保存（也可能已保存）；请稍后重发同一工单：重发会被识别并答复其工单编号，"
                      "不会重复保存")


_UNAUTHENTICATED = {"WWW-Authenticate": f'ApiKey header="{API_KEY_HEADER}"'}


def _unauthorized(message_en: str, zh: str) -> HttpRefusal:
    return HttpRefusal(401, "unauthorized", message_en, _UNAUTHENTICATED, zh=zh)


def _forbidden(adapter_id: str) -> HttpRefusal:
    return HttpRefusal(403, "forbidden", f"these credentials are valid, but not for adapter {adapter_id!r}",
                       zh=f"凭据有效，但不属于对接系统 {adapter_id!r}")


def _check_api_key(context: InboundContext, adapter_id: str, presented: str) -> None:
    own = context.credentials[adapter_id].api_key_digest
    if own is not None and digest_matches(presented, own):
        return
    # Compared with every adapter's key, without stopping early, to tell "wrong adapter" from "wrong key".
    others = [digest_matches(presented, c.api_key_digest) for a, c in context.credentials.items()
              if a != adapter_id and c.api_key_digest is not None]
    if any(others):
        raise _forbidden(adapter_id)
    raise _unauthorized(f"the {API_KEY_HEADER} header does not hold a valid key", f"{API_KEY_HEADER} 头中的密钥无效")


def hmac_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """The X-Signature value a partner sends: `sha256=` + hex HMAC-SHA256 over "timestamp.body"."""
    return SIGNATURE_PREFIX + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def _check_signature(context: InboundContext, adapter_id: str, signature: str, timestamp: str | None,
                     body: bytes) -> None:
    if not timestamp:
        raise _unauthorized(f"an {SIGNATURE_HEADER} needs an {TIMESTAMP_HEADER} header (unix seconds)",
                            f"带 {SIGNATURE_HEADER} 时须同时带 {TIMESTAMP_HEADER} 头（Unix 秒）")
    stamp = timestamp.strip()
    if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 12:
        raise _unauthorized(f"{TIMESTAMP_HEADER} must be unix seconds, got {stamp[:20]!r}",
                            f"{TIMESTAMP_HEADER} 应为 Unix 秒，收到的是 {stamp[:20]!r}")
    own = context.credentials[adapter_id]
    skew = abs(context.clock() - int(stamp))
    if skew > own.hmac_tolerance_seconds:
        raise _unauthorized(f"{TIMESTAMP_HEADER} is {int(skew)} s away from our clock; the tolerance is "
                            f"{own.hmac_tolerance_seconds} s (sign each request when sending it)",
                            f"{TIMESTAMP_HEADER} 与网关时钟相差 {int(skew)} 秒，"
                            f"允许相差 {own.hmac_tolerance_seconds} 秒"
                            "（请在发送每个请求时签名）")
    offered = signature.strip()
    if not offered.startswith(SIGNATURE_PREFIX):
        offered = SIGNATURE_PREFIX + offered
    offered_bytes = offered.encode("ascii", "replace")

    def matches(secret: bytes | None) -> bool:
        if secret is None:
            return False
        return hmac.compare_digest(hmac_signature(secret, stamp, body).encode("ascii"), offered_bytes)

    if matches(own.hmac_secret):
        return
    if any([matches(c.hmac_secret) for a, c in context.credentials.items() if a != adapter_id]):
        raise _forbidden(adapter_id)
    raise _unauthorized(f"the {SIGNATURE_HEADER} does not match the body (HMAC-SHA256 over "
                        f"\"{TIMESTAMP_HEADER}.body\", hex, prefixed {SIGNATURE_PREFIX})",
                        f"{SIGNATURE_HEADER} 与请求体不符（应为对“{TIMESTAMP_HEADER}.请求体”的 HMAC-SHA256，十六进制，"
                        f"前缀 {SIGNATURE_PREFIX}）")


def _check_media_type(content_type: str) -> None:
    media = content_type.split(";", 1)[0].strip().lower()
    if media and media not in JSON_MEDIA_TYPES and not media.endswith("+json"):
        raise HttpRefusal(415, "unsupported_media_type",
                          f"Content-Type {media!r} is not JSON; send application/json (charset=utf-8 or GBK)",
                          zh=f"Content-Type {media!r} 不是 JSON；请发送 application/json（charset=utf-8 或 GBK）")


def _returned_json(returned: Any) -> dict[str, Any]:
    if returned is None:
        return {}
    code = getattr(returned, "reason_code", None)
    return {"reason_code": None if code is None else str(getattr(code, "value", code)),
            "reason": getattr(returned, "reason", None),
            "source_ticket_no": getattr(returned, "source_ticket_no", None)}


def _follow_up_json(outcome: IntakeOutcomeView) -> dict[str, str]:
    return {"follow_up": outcome.follow_up} if outcome.follow_up is not None else {}


def outcome_response(outcome: IntakeOutcomeView) -> JSONResponse:
    """The HTTP answer to a partner for one intake outcome (documented in docs/integrators.md)."""
    if outcome.kind == "created":
        return JSONResponse({"ticket_id": outcome.ticket_id, "repeat": False}, status_code=202)
    if outcome.kind == "repeat":
        return JSONResponse({"ticket_id": outcome.ticket_id, "repeat": True, **_follow_up_json(outcome)},
                            status_code=200)
    if outcome.kind == "updated":  # a follow-up (new version, supplement, urge, withdrawal) of a known ticket
        return JSONResponse({"ticket_id": outcome.ticket_id, "repeat": False, **_follow_up_json(outcome)},
                            status_code=200)
    if outcome.kind == "review":
        # Stored, but whose matter it is needs an operator: nothing is forwarded until one settles it.
        return JSONResponse({"ticket_id": outcome.ticket_id, "repeat": False, "review": True}, status_code=202)
    if outcome.kind == "quarantined":
        return refusal_response(HttpRefusal(422, "unmappable", "the ticket does not map to the national standard; it "
                                            "is kept in quarantine for review",
                                            zh="工单不符合全国12315数据标准，已隔离待处理"),
                                quarantine_id=outcome.quarantine_id, errors=[e.reader_json() for e in outcome.errors])
    if outcome.kind == "returned":
        # A 退单 is a complete answer about this ticket, not a fault of the request: 200, and no retry. The
        # raw payload is kept (quarantine_id) so that ops can see what was sent back and why.
        return JSONResponse({"ticket_id": None, "returned": True, "quarantine_id": outcome.quarantine_id,
                             **_returned_json(outcome.returned)}, status_code=200)
    raise ValueError(f"unknown intake outcome kind {outcome.kind!r}")


_REQUEST_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "One ticket in the partner's own JSON shape, as its adapter's mapping spec reads it "
                       "(for the `canonical` adapter: a ticket in the national schema).",
        "content": {"application/json": {"schema": {"type": "object"}}},
    },
    "parameters": [
        {"name": API_KEY_HEADER, "in": "header", "required": False, "schema": {"type": "string"},
         "description": "The partner's API key; or sign with X-Signature + X-Timestamp instead."},
        {"name": SIGNATURE_HEADER, "in": "header", "required": False, "schema": {"type": "string"},
         "description": "sha256=<hex HMAC-SHA256 over \"<X-Timestamp>.<body>\"> with the adapter's secret."},
        {"name": TIMESTAMP_HEADER, "in": "header", "required": False, "schema": {"type": "string"},
         "description": "Unix seconds when signed; at most 5 minutes from the gateway's clock."},
    ],
}


def _problem_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"example": {
        "error": "code", "message": "中文：哪里不对、该怎么做", "message_en": "what is wrong and what to do"}}}}


async def answer_push(context: InboundContext, adapter_id: str, request: Request) -> JSONResponse:
    """The answer to one push: authenticate, read and parse the body within its limits, take the ticket."""
    return await _answer(context, adapter_id, request, follow_up=False)


async def answer_follow_up(context: InboundContext, adapter_id: str, request: Request) -> JSONResponse:
    """The answer to a canonical sender's follow-up (补充材料, 催办, 撤诉) of a ticket it pushed before."""
    return await _answer(context, adapter_id, request, follow_up=True)


async def _answer(context: InboundContext, adapter_id: str, request: Request, *, follow_up: bool) -> JSONResponse:
    config = context.adapters.get(adapter_id)
    if config is None or not config.enabled or not config.push:
        return refusal_response(HttpRefusal(404, "unknown_adapter", f"no adapter {adapter_id!r} takes pushes at this "
                                            "gateway", zh=f"本网关没有接收推送的对接系统 {adapter_id!r}"))
    if follow_up and not config.is_canonical:
        path = INBOUND_PATH.replace("{adapter_id}", adapter_id)
        return refusal_response(HttpRefusal(404, "not_canonical", f"adapter {adapter_id!r} maps its partner's own "
                                            f"shape: its follow-ups go to {path} as its mapping spec's follow_ups say",
                                            zh=f"对接系统 {adapter_id!r} 按对方自己的报文格式映射：其后续"
                                               f"（补充材料、催办、撤诉）按映射规则的 follow_ups 发往 {path}"))
    if adapter_id in context.missing or adapter_id not in context.credentials:
        return refusal_response(HttpRefusal(503, "adapter_not_configured",
                                            f"adapter {adapter_id!r} is not ready to take pushes (its credentials or "
                                            "mapping are not configured); tell the gateway's operators",
                                            {"Retry-After": NOT_CONFIGURED_RETRY_AFTER},
                                            zh=f"对接系统 {adapter_id!r} 尚不能接收推送（凭据或映射规则未配置）；"
                                               "请告知网关的运维人员"))
    try:
        check_declared_length(request, context.max_body_bytes)
        api_key = request.headers.get(API_KEY_HEADER)
        signature = request.headers.get(SIGNATURE_HEADER)
        if not api_key and not signature:
            raise _unauthorized(f"send an {API_KEY_HEADER} header, or sign the body with {SIGNATURE_HEADER} "
                                f"and {TIMESTAMP_HEADER}",
                                f"请带 {API_KEY_HEADER} 头，或用 {SIGNATURE_HEADER} 和 {TIMESTAMP_HEADER} 对请求体签名")
        if api_key:
            _check_api_key(context, adapter_id, api_key)
        body = await read_limited(request, context.max_body_bytes)
        if not api_key and signature:
            _check_signature(context, adapter_id, signature, request.headers.get(TIMESTAMP_HEADER), body)
        content_type = request.headers.get("content-type", "application/json")
        _check_media_type(content_type)
        try:
            payload = parse_json_body(body, content_type)
        except PayloadError as err:
            raise HttpRefusal(400, "invalid_json", str(err), zh=f"请求体不是有效的 JSON（{err}）") from err
        if not isinstance(payload, dict):
            raise HttpRefusal(400, "invalid_json", f"a ticket is a JSON object, not a {type(payload).__name__}",
                              zh=f"工单应为 JSON 对象，收到的是 {type(payload).__name__}")
        if follow_up and FOLLOW_UP_KIND not in payload:
            return refusal_response(HttpRefusal(422, "invalid_follow_up", "a follow-up names its kind: supplement, "
                                                "urge or withdrawal",
                                                zh="跟进消息缺少 kind（supplement、urge 或 withdrawal）"),
                                    errors=[FieldError(field=FOLLOW_UP_KIND, rule="missing", source_path=FOLLOW_UP_KIND,
                                                       message="kind: supplement, urge or withdrawal").reader_json()])
    except HttpRefusal as refusal:
        log.info("push refused", extra={"adapter_id": adapter_id, "status": refusal.status,
                                        "error": refusal.error, "reason": refusal.message_en})
        return refusal_response(refusal)
    try:
        outcome = await context.intake.accept(adapter_id, payload, raw_body=body, content_type=content_type)
    except Exception:  # not the partner's fault; the store may have taken the ticket before failing to answer
        log.exception("push intake failed", extra={"adapter_id": adapter_id})
        return refusal_response(HttpRefusal(503, "unavailable", OUTCOME_UNKNOWN, {"Retry-After": "30"},
                                            zh=OUTCOME_UNKNOWN_ZH), stored="unknown", retry_safe=True)
    # Intake logged the outcome (stored, repeated, quarantined or returned): one line per ticket.
    return outcome_response(outcome)


def document_canonical_pushes(openapi: dict[str, Any], adapter_ids: Iterable[str]) -> None:
    """Give each canonical adapter its own push path in the OpenAPI document, its body typed as the national
    ticket (the generic path's body is any object: what a partner's own shape holds is its mapping spec's)."""
    generic = openapi.get("paths", {}).get(INBOUND_PATH, {}).get("post")
    if generic is None:
        return
    prefix = "CanonicalPush."
    schema = canonical_push_schema(f"#/components/schemas/{prefix}")
    components = openapi.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in schema.pop("$defs", {}).items():
        components[prefix + name] = definition
    components["CanonicalTicketPush"] = schema
    for adapter_id in sorted(adapter_ids):
        operation = copy.deepcopy(generic)
        operation["operationId"] = f"push_ticket_{adapter_id.replace('-', '_')}"
        operation["summary"] = f"The canonical adapter {adapter_id} takes one ticket in the national standard"
        operation["parameters"] = [p for p in operation.get("parameters", []) if p.get("in") != "path"]
        operation["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/CanonicalTicketPush"}}}}
        openapi["paths"][INBOUND_PATH.replace("{adapter_id}", adapter_id)] = {"post": operation}


# The gateway answers pushes here without FastAPI's routing (gateway/http/fast_path.py).
INBOUND_PUSH = PushRoute(INBOUND_PATH, "inbound", InboundContext, answer_push)


def inbound_router(*dependencies: Callable[..., object]) -> APIRouter:
    """The push intake route; `dependencies` run before it for every request it takes (FastAPI's router
    dependencies: a test sees which requests reach the route rather than the fast path)."""
    router = APIRouter(tags=["inbound"], dependencies=[Depends(d) for d in dependencies])

    @router.post(
        INBOUND_PATH,
        status_code=202,
        summary="A partner pushes one ticket in its own shape",
        response_model=None,
        openapi_extra=_REQUEST_BODY_DOC,
        responses={
            200: {"description": "A repeat of a stored ticket (same id), or a ticket returned to sender (退单)"},
            202: {"description": "Stored durably; the gateway's ticket id (`review`: true when it waits for an "
                                 "operator's jurisdiction decision before it is forwarded)"},
            400: _problem_doc("The body is not JSON, or not a JSON object"),
            401: _problem_doc("Missing or wrong credentials"),
            403: _problem_doc("Valid credentials of another adapter"),
            404: _problem_doc("No adapter with this id takes pushes"),
            408: _problem_doc("The body did not arrive within server.body_timeout_seconds"),
            413: _problem_doc("The body exceeds server.max_body_bytes"),
            415: _problem_doc("The body is not JSON"),
            422: {"description": "Unmappable: per-field errors and the quarantine id of the kept raw payload"},
            503: _problem_doc("The adapter's credentials are not configured, or the store did not confirm the write "
                              "(`stored`: `unknown`, `retry_safe`: true: send the same ticket again)"),
        },
    )
    async def push_ticket(adapter_id: str, request: Request, context: Inbound) -> JSONResponse:
        return await answer_push(context, adapter_id, request)

    @router.post(
        FOLLOW_UPS_INBOUND_PATH,
        status_code=200,
        summary="A canonical sender follows up a ticket it pushed before: 补充材料, 催办 or 撤诉",
        response_model=None,
        openapi_extra={**_REQUEST_BODY_DOC, "requestBody": {"required": True, "content": {"application/json": {
            "schema": canonical_follow_up_schema()}}}},
        responses={
            200: {"description": "Applied to the ticket the sender pushed before (`follow_up` names what it said), "
                                 "or a repeat of one already taken (`repeat`: true)"},
            400: _problem_doc("The body is not JSON, or not a JSON object"),
            401: _problem_doc("Missing or wrong credentials"),
            403: _problem_doc("Valid credentials of another adapter"),
            404: _problem_doc("No adapter with this id takes pushes, or it is not a canonical adapter"),
            413: _problem_doc("The body exceeds server.max_body_bytes"),
            415: _problem_doc("The body is not JSON"),
            422: {"description": "Invalid (each field with its rule), or of a ticket the gateway does not hold (yet): "
                                 "`follow_up.source_ticket_no` / `unknown_ticket`, kept under quarantine_id"},
            503: _problem_doc("The adapter's credentials are not configured, or the store did not confirm the write"),
        },
    )
    async def push_follow_up(adapter_id: str, request: Request, context: Inbound) -> JSONResponse:
        return await answer_follow_up(context, adapter_id, request)

    return router
