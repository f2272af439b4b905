"""The provincial 12345 SOAP system as a FastAPI app: pending work orders, sign-for (ack), write-backs recorded."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from adapters.wire.envelope import SoapFault, build_envelope, content_type, read_envelope, serialize
from adapters.wire.wsse import SECURITY, UsernameTokenPolicy, verify_username_token
from adapters.wire.xml import parse_xml
from mapping.payload import xml_records

log = logging.getLogger(__name__)

NS = "http://12345.guizhou.gov.cn/ws/order"
WSDL_FILE = Path(__file__).resolve().parent / "province12345.wsdl"
FIXTURES = Path(__file__).resolve().parent.parent.parent / "mapping" / "fixtures" / "province-12345-soap"
SOAP_PATH = "/ws/order"
MAX_BODY = 1_048_576
MAX_BATCH = 500

# The elements of one work order, in the order the WSDL's sequence requires them.
ORDER_FIELDS = (
    "infoid", "visittime", "way", "aim", "questiontype", "title", "content", "request", "limittime", "limitdays",
    "isend", "visitorname", "sex", "idcard", "mobilephone", "visitoraddress", "questionarea", "eventaddress",
    "objectname", "objectcode", "objectaddress", "urgentlevel", "addorg", "ispub", "attachments",
    "ordertype", "version", "optid", "opttime", "optcontent", "optuser",
)
FILE_FIELDS = ("filename", "url", "sha256", "mimetype", "filesize")
REPLY_FIELDS = ("infoid", "replytype", "replycontent", "replytime", "replyorg", "replyuser", "backreason", "limittime",
                "isend", "satisfaction")
# The steps of a work order's handling the province takes back: dispatch, reply, send back, extend, close.
REPLY_TYPES = ("派单", "回单", "退单", "延期", "办结")
# The province writes its elements in a default namespace (lxml-stubs does not type a None prefix).
_DEFAULT_NS: Any = {None: NS}


class Behaviour(BaseModel):
    """How the simulator misbehaves, changed at run time with POST /sim/behaviour."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    delay_seconds: Annotated[float, Field(ge=0, le=3600)] = 0.0  # before every SOAP answer (slow partner)
    server_faults: Annotated[int, Field(ge=0)] = 0  # the next n SOAP calls answer with a soap:Server Fault
    http_errors: Annotated[int, Field(ge=0)] = 0  # the next n SOAP calls answer with a bare HTTP 503
    response_charset: Literal["UTF-8", "GBK"] = "UTF-8"


class BehaviourUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delay_seconds: Annotated[float, Field(ge=0, le=3600)] | None = None
    server_faults: Annotated[int, Field(ge=0)] | None = None
    http_errors: Annotated[int, Field(ge=0)] | None = None
    response_charset: Literal["UTF-8", "GBK"] | None = None


@dataclass
class PendingOrder:
    seq: int
    fields: dict[str, Any]
    acked_at: datetime | None = None

    @property
    def infoid(self) -> str:
        return str(self.fields["infoid"])


@dataclass(frozen=True)
class RecordedReply:
    """One ReplyOrder as the province received it."""

    infoid: str
    type: str
    fields: dict[str, str]
    received_at: datetime


@dataclass
class Province12345:
    """The province's state; thread-safe, so tests read it while the server runs in another thread."""

    username: str | None = None
    password: str | None = None
    behaviour: Behaviour = field(default_factory=Behaviour)
    orders: list[PendingOrder] = field(default_factory=list)
    replies: list[RecordedReply] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    in_flight: Counter[str] = field(default_factory=Counter)
    max_in_flight: Counter[str] = field(default_factory=Counter)
    call_log: list[tuple[str, float]] = field(default_factory=list)  # (operation, time.monotonic()) per call
    user_agents: Counter[str] = field(default_factory=Counter)  # the User-Agent of every SOAP request
    _nonces: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- orders ----------------------------------------------------------------------------------
    def add_order(self, fields: dict[str, Any]) -> PendingOrder:
        unknown = sorted(set(fields) - set(ORDER_FIELDS))
        if unknown:
            raise ValueError(f"unknown work-order fields: {', '.join(unknown)}")
        if not fields.get("infoid"):
            raise ValueError("a work order needs an infoid")
        with self._lock:
            # A follow-up (补充, 催办, 撤回, a new version) names an order already sent: it is told apart by its own
            # number and version, not by its infoid.
            if any(_identity(order.fields) == _identity(fields) for order in self.orders):
                raise ValueError(f"work order {fields['infoid']} exists already")
            order = PendingOrder(seq=len(self.orders) + 1, fields=dict(fields))
            self.orders.append(order)
            return order

    def seed_fixtures(self, folder: Path = FIXTURES) -> int:
        """Hold every first work order of the mapping fixtures (JSON, and the orders of the GBK envelope); their
        follow-ups (a new version, 补充, 催办, 撤回) are `follow_up_fixtures`."""
        count = 0
        # Only the payloads: NN-name.json and NN-name.xml, not the goldens beside them (NN-name.expected.json …).
        for file in sorted(f for f in folder.iterdir() if f.name.count(".") == 1):
            if file.suffix == ".json":
                fields = json.loads(file.read_text(encoding="utf-8"))
                if is_follow_up(fields):
                    continue  # held only when asked for (follow_up_fixtures): they name an order held before
                self.add_order(fields)
                count += 1
            elif file.suffix == ".xml":
                for record in xml_records(file.read_bytes(), None, "order"):
                    self.add_order(record)
                    count += 1
        return count

    def pending(self, since: int, limit: int) -> tuple[list[PendingOrder], int | None, bool]:
        """Unacknowledged orders after watermark `since`: (orders, new watermark, more waiting)."""
        with self._lock:
            waiting = [o for o in self.orders if o.seq > since and o.acked_at is None]
            batch = waiting[:limit]
            watermark = batch[-1].seq if batch else None
            return batch, watermark, len(waiting) > len(batch)

    def ack(self, infoids: list[str]) -> int:
        now = datetime.now(UTC)
        wanted = set(infoids)
        done = 0
        with self._lock:
            for order in self.orders:  # every order held under a signed-for infoid, its follow-ups too
                if order.infoid in wanted and order.acked_at is None:
                    order.acked_at = now
                    done += 1
        return done

    def acked_ids(self) -> list[str]:
        with self._lock:
            return [o.infoid for o in self.orders if o.acked_at is not None]

    def record_reply(self, fields: dict[str, str]) -> RecordedReply:
        infoid, kind = fields.get("infoid", ""), fields.get("replytype", "")
        if kind not in REPLY_TYPES:
            raise SoapFault.client(f"ReplyOrder: unknown replytype {kind!r}; "
                                   f"expected one of {' / '.join(REPLY_TYPES)}",
                                   zh=f"ReplyOrder：未知的回复类型 {kind!r}，应为 {' / '.join(REPLY_TYPES)} 之一")
        with self._lock:
            if not any(o.infoid == infoid for o in self.orders):
                raise SoapFault.client(f"ReplyOrder: no work order {infoid!r}",
                                       zh=f"ReplyOrder：工单 {infoid!r} 不存在")
            reply = RecordedReply(infoid=infoid, type=kind, fields=dict(fields), received_at=datetime.now(UTC))
            self.replies.append(reply)
            return reply

    def replies_for(self, infoid: str | None = None) -> list[RecordedReply]:
        with self._lock:
            return [r for r in self.replies if infoid is None or r.infoid == infoid]

    # -- behaviour -------------------------------------------------------------------------------
    def update_behaviour(self, update: BehaviourUpdate) -> Behaviour:
        with self._lock:
            for name, value in update.model_dump(exclude_none=True).items():
                setattr(self.behaviour, name, value)
            return self.behaviour.model_copy()

    def _take_failure(self) -> Literal["fault", "http", None]:
        with self._lock:
            if self.behaviour.http_errors > 0:
                self.behaviour.http_errors -= 1
                return "http"
            if self.behaviour.server_faults > 0:
                self.behaviour.server_faults -= 1
                return "fault"
            return None

    def _enter(self, operation: str) -> None:
        with self._lock:
            self.calls[operation] += 1
            self.call_log.append((operation, time.monotonic()))
            self.in_flight[operation] += 1
            self.max_in_flight[operation] = max(self.max_in_flight[operation], self.in_flight[operation])

    def _leave(self, operation: str) -> None:
        with self._lock:
            self.in_flight[operation] -= 1

    async def _remember_nonce(self, nonce: str, ttl: float) -> bool:
        with self._lock:
            if nonce in self._nonces:
                return False
            self._nonces.add(nonce)
            return True

    # -- SOAP ------------------------------------------------------------------------------------
    async def handle(self, body: bytes, content_type_header: str | None) -> tuple[int, bytes, str]:
        """Answer one SOAP request: (HTTP status, body, Content-Type)."""
        charset = self.behaviour.response_charset
        operation = "(unparsed)"
        entered = False
        try:
            root, _ = parse_xml(body, content_type_header)
            envelope = read_envelope(root, understood={SECURITY})
            operation = envelope.operation.localname
            self._enter(operation)
            entered = True
            if self.username is not None and self.password is not None:
                policy = UsernameTokenPolicy(self.username, self.password)
                await verify_username_token(envelope.header, policy, self._remember_nonce)
            delay = self.behaviour.delay_seconds
            if delay:
                await asyncio.sleep(delay)
            failure = self._take_failure()
            if failure == "http":
                return 503, b"Service Unavailable", "text/plain; charset=utf-8"
            if failure == "fault":
                raise SoapFault.server("simulated outage of the provincial 12345 system",
                                       zh="省12345系统故障（模拟）")
            answer = self._dispatch(envelope.body_child)
            return 200, serialize(build_envelope(answer), charset), content_type(charset)
        except SoapFault as fault:
            return fault.http_status, serialize(fault.envelope(), charset), content_type(charset)
        finally:
            if entered:
                self._leave(operation)

    def _dispatch(self, request: etree._Element) -> etree._Element:
        qname = etree.QName(request)
        if qname.namespace != NS:
            raise SoapFault.client(f"unknown operation {qname.localname} in namespace {qname.namespace}; "
                                   f"operations are in {NS}",
                                   zh=f"未知操作 {qname.localname}（命名空间 {qname.namespace}）；"
                                      f"操作在命名空间 {NS} 中")
        if qname.localname == "GetPendingOrders":
            return self._get_pending(request)
        if qname.localname == "AckOrders":
            ids = [(el.text or "").strip() for el in request.iter(f"{{{NS}}}infoid")]
            result = etree.Element(f"{{{NS}}}AckOrdersResponse", nsmap=_DEFAULT_NS)
            etree.SubElement(result, f"{{{NS}}}AckOrdersResult").text = str(self.ack(ids))
            return result
        if qname.localname == "ReplyOrder":
            fields = {etree.QName(el).localname: el.text or "" for el in request if isinstance(el.tag, str)}
            unknown = sorted(set(fields) - set(REPLY_FIELDS))
            if unknown:
                raise SoapFault.client(f"ReplyOrder: unknown elements {', '.join(unknown)}",
                                       zh=f"ReplyOrder：未知元素 {'、'.join(unknown)}")
            reply = self.record_reply(fields)
            log.info("province 12345: reply recorded", extra={"infoid": reply.infoid, "type": reply.type})
            result = etree.Element(f"{{{NS}}}ReplyOrderResponse", nsmap=_DEFAULT_NS)
            inner = etree.SubElement(result, f"{{{NS}}}ReplyOrderResult")
            etree.SubElement(inner, f"{{{NS}}}code").text = "0"
            etree.SubElement(inner, f"{{{NS}}}message").text = "成功"
            return result
        raise SoapFault.client(f"unknown operation {qname.localname}; the province offers GetPendingOrders, "
                               "AckOrders and ReplyOrder",
                               zh=f"未知操作 {qname.localname}；省12345提供 GetPendingOrders、AckOrders 和 ReplyOrder")

    def _get_pending(self, request: etree._Element) -> etree._Element:
        since_text = (request.findtext(f"{{{NS}}}since") or "").strip()
        max_text = (request.findtext(f"{{{NS}}}max") or "").strip()
        try:
            since = int(since_text) if since_text else 0
            limit = min(int(max_text), MAX_BATCH) if max_text else 50
        except ValueError:
            raise SoapFault.client(f"GetPendingOrders: since {since_text!r} and max {max_text!r} must be whole "
                                   "numbers", zh=f"GetPendingOrders：since {since_text!r} 和 max {max_text!r} 须为整数"
                                   ) from None
        if since < 0 or limit < 1:
            raise SoapFault.client("GetPendingOrders: since must be ≥ 0 and max ≥ 1",
                                   zh="GetPendingOrders：since 须 ≥ 0，max 须 ≥ 1")
        batch, watermark, more = self.pending(since, limit)
        response = etree.Element(f"{{{NS}}}GetPendingOrdersResponse", nsmap=_DEFAULT_NS)
        result = etree.SubElement(response, f"{{{NS}}}GetPendingOrdersResult")
        for order in batch:
            result.append(order_element(order.fields))
        etree.SubElement(result, f"{{{NS}}}watermark").text = str(watermark if watermark is not None else since)
        etree.SubElement(result, f"{{{NS}}}hasmore").text = "true" if more else "false"
        return response


def is_follow_up(fields: dict[str, Any]) -> bool:
    """A follow-up of an order held before: 补充, 催办, 撤回, or a later version of a 派单."""
    return fields.get("ordertype") not in (None, "派单") or fields.get("version") not in (None, "1")


def follow_up_fixtures(folder: Path = FIXTURES) -> dict[str, dict[str, Any]]:
    """The follow-ups among the mapping fixtures, by file name without suffix, in file order."""
    found: dict[str, dict[str, Any]] = {}
    for file in sorted(folder.glob("*.json")):
        if file.name.count(".") == 1:
            fields = json.loads(file.read_text(encoding="utf-8"))
            if is_follow_up(fields):
                found[file.stem] = fields
    return found


def _identity(fields: dict[str, Any]) -> tuple[str, str, str, str]:
    """What tells one held order from another: its infoid, and for a follow-up its type, number and version."""
    return (str(fields.get("infoid")), str(fields.get("ordertype") or "派单"), str(fields.get("optid") or ""),
            str(fields.get("version") or ""))


def order_element(fields: dict[str, Any]) -> etree._Element:
    """One work order as the province writes it: elements in WSDL order, absent and null fields left out."""
    order = etree.Element(f"{{{NS}}}order")
    for name in ORDER_FIELDS:
        value = fields.get(name)
        if value is None:
            continue
        if name == "attachments":
            files = value.get("file") if isinstance(value, dict) else None
            holder = etree.SubElement(order, f"{{{NS}}}attachments")
            for item in files if isinstance(files, list) else [files] if files else []:
                file = etree.SubElement(holder, f"{{{NS}}}file")
                for key in FILE_FIELDS:
                    if item.get(key) is not None:
                        etree.SubElement(file, f"{{{NS}}}{key}").text = str(item[key])
            continue
        etree.SubElement(order, f"{{{NS}}}{name}").text = str(value)
    return order


def served_wsdl(address: str) -> bytes:
    """The province's WSDL with soap:address pointing at `address`."""
    root = etree.fromstring(WSDL_FILE.read_bytes())
    for node in root.iter("{http://schemas.xmlsoap.org/wsdl/soap/}address"):
        node.set("location", address)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def create_app(province: Province12345) -> FastAPI:
    """The simulator's HTTP face: the SOAP endpoint and its WSDL, and a JSON control API under /sim."""
    app = FastAPI(title="Provincial 12345 simulator", version="1.0")
    app.state.province = province

    @app.get(SOAP_PATH)
    async def wsdl(request: Request) -> Response:
        if "wsdl" not in request.query_params:
            return Response("GET ?wsdl for the WSDL; SOAP requests are POSTed here", status_code=400)
        address = str(request.url.replace(query=""))
        return Response(served_wsdl(address), media_type="text/xml; charset=UTF-8")

    @app.post(SOAP_PATH)
    async def soap(request: Request) -> Response:
        province.user_agents[request.headers.get("user-agent", "")] += 1
        body = bytearray()
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > MAX_BODY:
                fault = SoapFault.client(f"the body exceeds {MAX_BODY} bytes", zh=f"请求体超过 {MAX_BODY} 字节",
                                         http_status=413)
                return Response(serialize(fault.envelope()), status_code=413, media_type=content_type())
        # A caller that gave up (timed out) is no longer in flight: stop answering it, as a real server would.
        answer = asyncio.create_task(province.handle(bytes(body), request.headers.get("content-type")))
        while True:
            done, _ = await asyncio.wait({answer}, timeout=0.05)
            if done:
                break
            if await request.is_disconnected():
                answer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await answer
                return Response(status_code=499)
        status, payload, media = answer.result()
        return Response(payload, status_code=status, headers={"Content-Type": media})

    @app.get("/sim/orders")
    async def orders() -> list[dict[str, Any]]:
        with province._lock:
            return [{"seq": o.seq, "infoid": o.infoid, "acked": o.acked_at is not None,
                     "acked_at": o.acked_at.isoformat() if o.acked_at else None} for o in province.orders]

    @app.post("/sim/orders", response_model=None)
    async def add_order(request: Request) -> JSONResponse:
        try:
            data = json.loads(await request.body())
            items = data if isinstance(data, list) else [data]
            added = [province.add_order(item).seq for item in items]
        except (ValueError, TypeError, AttributeError) as err:
            return JSONResponse({"error": str(err)}, status_code=422)
        return JSONResponse({"added": added}, status_code=201)

    @app.get("/sim/replies")
    async def replies() -> list[dict[str, Any]]:
        return [{"infoid": r.infoid, "type": r.type, "fields": r.fields, "received_at": r.received_at.isoformat()}
                for r in province.replies_for()]

    @app.get("/sim/calls")
    async def calls() -> dict[str, dict[str, int]]:
        with province._lock:
            return {"calls": dict(province.calls), "max_in_flight": dict(province.max_in_flight)}

    @app.get("/sim/behaviour")
    async def get_behaviour() -> Behaviour:
        return province.behaviour.model_copy()

    @app.post("/sim/behaviour")
    async def set_behaviour(update: BehaviourUpdate) -> Behaviour:
        return province.update_behaviour(update)

    return app
