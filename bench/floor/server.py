"""The least a REST intake can be, as a server: the bare baseline's FastAPI and uvicorn, doing only the work
the intake benchmark names (authenticate, map, store, enqueue) with bare libraries.

One POST route takes the city 12345 platform's JSON: the API key compared in constant time, the body parsed,
mapped by the hand-written function (`bench/common/hand_mapping.py`, the same tickets as the declarative spec)
into the canonical Ticket with the contract's checks, serialised once, and stored durably with its raw
payload and national delivery (`bench/floor/bare_store.py`: sqlite3 at synchronous=FULL, writes grouped into
shared commits on one writer thread) before it answers 202. Nothing else of a gateway: no routing, deadlines,
enrichment, idempotency look-up, body limits, logging, metrics or error bodies naming the field.

`--store redis` writes the same three records with one MULTI/EXEC round trip instead (redis-py asyncio with
hiredis, as the gateway); `--store none` writes nothing, which is not an intake: it shows what the write costs.

`--answer fast-path` (the default) answers the two POSTs in an ASGI middleware before FastAPI's routing, request
handling and dependencies, installed where the gateway installs its own (`gateway/http/fast_path.py`): inside
FastAPI's middleware stack, so each request pays FastAPI's and Starlette's entry and error middleware as a push to
the gateway does; `--answer routes` answers them through the FastAPI routes. `--loop`/`--http` choose uvicorn's
event loop and HTTP parser (`asyncio`/`h11`, as the gateway runs today, or `uvloop`/`httptools`, what
`fastapi[standard]` installs).

    FLOOR_API_KEY=... FLOOR_SOAP_PASSWORD=... FLOOR_DB=/tmp/floor.db \\
        python -m bench.floor.server --port 8398 [--store sqlite|redis|none] [--answer fast-path|routes]
"""

from __future__ import annotations

import argparse
import base64
import hmac
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from lxml import etree
from pydantic import ValidationError
from redis.asyncio import Redis
from starlette.types import ASGIApp, Receive, Scope, Send

from adapters.wire.envelope import SOAP11_ENV
from adapters.wire.wsse import WSSE, WSU, password_digest
from bench.common.hand_mapping import hand_written, province_hand_written
from bench.floor.bare_store import BareReads, BareStore, GroupCommit, Row
from contracts.ticket import Ticket
from gateway.http.wsdl import TNS
from gateway.store.link_candidate import LinkCandidate
from gateway.store.records import to_ms

if TYPE_CHECKING:
    from bench.floor.decisions import Decided

FLOOR_CITY_PATH = "/floor/city/tickets"
FLOOR_SOAP_PATH = "/floor/province/soap"
FLOOR_SOAP_USER = "gz-12345"
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
_SECURITY = f"{{{SOAP11_ENV}}}Header/{{{WSSE}}}Security/{{{WSSE}}}UsernameToken"
_ORDER = f"{{{SOAP11_ENV}}}Body/{{{TNS}}}SubmitTicket/{{{TNS}}}order"
_FRESH = timedelta(minutes=5)


class SoapRefused(Exception):
    pass


def _checked_order(envelope: bytes, password: str) -> tuple[dict[str, str | None], str]:
    """The order of a SubmitTicket whose UsernameToken (PasswordDigest) holds: (order, nonce)."""
    root = etree.fromstring(envelope, _PARSER)
    token = root.find(_SECURITY)
    order = root.find(_ORDER)
    if token is None or order is None:
        raise SoapRefused("not a SubmitTicket with a UsernameToken")
    user = token.findtext(f"{{{WSSE}}}Username")
    digest = token.findtext(f"{{{WSSE}}}Password") or ""
    nonce = token.findtext(f"{{{WSSE}}}Nonce") or ""
    created = token.findtext(f"{{{WSU}}}Created") or ""
    moment = datetime.fromisoformat(created)
    if abs(datetime.now(UTC) - moment) > _FRESH:
        raise SoapRefused("Created is not fresh")
    expected = password_digest(base64.b64decode(nonce), created, password)
    if user != FLOOR_SOAP_USER or not hmac.compare_digest(digest.encode(), expected.encode()):
        raise SoapRefused("the UsernameToken does not authenticate")
    return {etree.QName(child).localname: child.text for child in order}, nonce


def _soap_answer(ticket_id: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Body>'
            f'<SubmitTicketResponse xmlns="{TNS}"><ticketId>{ticket_id}</ticketId><repeat>false</repeat>'
            f"</SubmitTicketResponse></soap:Body></soap:Envelope>").encode()


StoreKind = Literal["sqlite", "redis", "none"]
Write = Callable[[Row], Awaitable[None]]


async def _write_nothing(row: Row) -> None:
    return None


def _redis_writer(url: str) -> tuple[Write, Callable[[], Awaitable[None]], RedisReads]:
    client = Redis.from_url(url)

    async def write(row: Row) -> None:
        async with client.pipeline(transaction=True) as pipe:
            pipe.set(f"floor:ticket:{row.ticket_id}", row.ticket_json)
            pipe.set(f"floor:source:{row.source_no}", row.ticket_id, nx=True)
            pipe.set(f"floor:raw:{row.ticket_id}", row.raw)
            if row.forwarded:
                pipe.xadd("floor:lane:national", {"ticket": row.ticket_id})
            for lane, body in row.side_deliveries:
                pipe.xadd(f"floor:lane:{lane}", {"ticket": row.ticket_id, "body": body})
            for key in row.link_keys:
                pipe.zadd(f"floor:link:{key}", {row.ticket_id: row.received_ms})
            if row.nonce is not None:
                pipe.set(f"floor:nonce:{row.nonce}", 1, nx=True, ex=600)
            await pipe.execute()

    return write, client.aclose, RedisReads(client)


_WRITE_UNLESS_CANDIDATES = """
if redis.call('EXISTS', 'floor:source:' .. ARGV[1]) == 1 then return {1} end
local nkeys, nsides = tonumber(ARGV[9]), tonumber(ARGV[10])
local found, seen = {2}, {}
for i = 1, nkeys do
  for _, id in ipairs(redis.call('ZREVRANGEBYSCORE', 'floor:link:' .. ARGV[12 + i], ARGV[7], ARGV[6], 'LIMIT', 0,
                                 tonumber(ARGV[8]))) do
    if not seen[id] then seen[id] = true; table.insert(found, redis.call('GET', 'floor:ticket:' .. id)) end
  end
end
if #found > 1 then return found end
redis.call('SET', 'floor:ticket:' .. ARGV[2], ARGV[3])
redis.call('SET', 'floor:source:' .. ARGV[1], ARGV[2])
redis.call('SET', 'floor:raw:' .. ARGV[2], ARGV[4])
if ARGV[12] == '1' then redis.call('XADD', 'floor:lane:national', '*', 'ticket', ARGV[2]) end
for i = 1, nsides do
  local at = 12 + nkeys + 2 * i - 1
  redis.call('XADD', 'floor:lane:' .. ARGV[at], '*', 'ticket', ARGV[2], 'body', ARGV[at + 1])
end
for i = 1, nkeys do redis.call('ZADD', 'floor:link:' .. ARGV[12 + i], ARGV[11], ARGV[2]) end
if ARGV[5] ~= '' then redis.call('SET', 'floor:nonce:' .. ARGV[5], 1, 'NX', 'EX', 600) end
return {0}
"""


class RedisReads:
    """The deciding floor's look-ups on Redis: as the gateway's intake script, the partner's number and each link
    key's newest checked and the ticket written in one round trip (one script) when there is no candidate."""

    def __init__(self, client: Redis) -> None:
        self.client = client
        self.script = client.register_script(_WRITE_UNLESS_CANDIDATES)

    async def write_unless_candidates(self, row: Row, since_ms: int, until_ms: int, limit: int) -> list[bytes]:
        """Write `row` unless its number is taken (ValueError) or its link keys find candidates (their bodies)."""
        args: list[str | bytes | int] = [
            row.source_no, row.ticket_id, row.ticket_json, row.raw, row.nonce or "", since_ms, until_ms, limit,
            len(row.link_keys), len(row.side_deliveries), row.received_ms, "1" if row.forwarded else "0",
            *row.link_keys, *(part for lane, body in row.side_deliveries for part in (lane, body))]
        reply = cast(list[Any], await self.script(args=args))
        if int(reply[0]) == 1:
            raise ValueError("a later version: not in this benchmark")
        return [bytes(body) for body in reply[1:]]


Reads = BareReads | RedisReads


Answer = Literal["fast-path", "routes"]


def create_app(api_key: str, soap_password: str, store: StoreKind, db_path: Path, redis_url: str,
               answer: Answer = "fast-path", *, decide: bool = False) -> FastAPI:
    """The floor's app; with `decide`, it also makes the gateway's business decisions about each ticket
    (`bench/floor/decisions.py`) and stores what they add, reading the gateway's configuration from `HIG_*`."""
    app = FastAPI(title="intake floor")
    write: Write
    reads: Reads | None = None
    if store == "sqlite":
        bare = BareStore(db_path)
        group = GroupCommit(bare)
        write = group.write
        reads = bare.reader()
        app.router.on_shutdown.append(group.close)
        app.router.on_shutdown.append(reads.close)
    elif store == "redis":
        write, close, reads = _redis_writer(redis_url)
        app.router.on_shutdown.append(close)
    else:
        write = _write_nothing
    if decide:
        from bench.floor.decisions import Decisions

        decisions = Decisions()
        if reads is None:
            raise SystemExit("--decide needs a store to look tickets up in")

    async def stored(ticket: Ticket, raw: bytes, nonce: str | None) -> str | None:
        """Store the ticket (deciding first with `decide`); its id, None when it goes back to its sender."""
        if not decide:
            ticket_id = str(uuid.uuid4())
            await write(Row(ticket_id, ticket.source.source_ticket_no, ticket.model_dump_json().encode(), raw, nonce,
                            ticket.complainant.phone))
            return ticket_id
        assert reads is not None
        decided = decisions.decide(ticket)
        if decided is None:
            return None
        q = decided.query
        since, until, limit = (to_ms(q.since), to_ms(q.until), q.limit) if q is not None else (0, 0, 0)
        if isinstance(reads, RedisReads):  # one script: look-ups and write, as the gateway's intake on Redis
            found = await reads.write_unless_candidates(_row(decided, raw, nonce), since, until, limit)
            if found:
                decided = decisions.linked(decided, [LinkCandidate.model_validate_json(b) for b in found])
                await write(_row(decided, raw, nonce))
        else:  # reads in place on the loop's connection, then the group-committed write, as the gateway's on SQLite
            if await reads.known(ticket.source.source_ticket_no) is not None:
                raise ValueError("a later version: not in this benchmark")
            bodies = await reads.candidate_bodies(decided.link_keys, q) if q is not None else []
            if bodies:
                decided = decisions.linked(decided, [LinkCandidate.model_validate_json(b) for b in bodies])
            await write(_row(decided, raw, nonce))
        ticket = decided.ticket
        decisions.logged(ticket.ticket_id, ticket.source.adapter_id)
        return ticket.ticket_id

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(FLOOR_CITY_PATH, status_code=202, response_model=None)
    async def city_route(request: Request) -> JSONResponse:
        return await city(request)

    @app.post(FLOOR_SOAP_PATH, response_model=None)
    async def province_route(request: Request) -> Response:
        return await province(request)

    async def city(request: Request) -> JSONResponse:
        if not hmac.compare_digest(request.headers.get("x-api-key", "").encode(), api_key.encode()):
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        raw = await request.body()
        try:
            ticket = hand_written(json.loads(raw))
        except (ValueError, ValidationError, KeyError, TypeError) as err:
            return JSONResponse({"error": type(err).__name__}, status_code=422)
        if ticket is None:
            return JSONResponse({"error": "not for the market regulator"}, status_code=422)
        ticket_id = await stored(ticket, raw, None)
        if ticket_id is None:
            return JSONResponse({"outcome": "returned"}, status_code=200)
        return JSONResponse({"ticket_id": ticket_id, "repeat": False}, status_code=202)

    async def province(request: Request) -> Response:
        raw = await request.body()
        try:
            order, nonce = _checked_order(raw, soap_password)
            ticket = province_hand_written(order)
        except (SoapRefused, etree.XMLSyntaxError, ValueError, ValidationError, KeyError, TypeError) as err:
            return Response(_soap_fault(type(err).__name__), status_code=500, media_type="text/xml")
        if ticket is None:
            return Response(_soap_fault("returned"), status_code=500, media_type="text/xml")
        ticket_id = await stored(ticket, raw, nonce)
        if ticket_id is None:
            return Response(_soap_fault("returned"), status_code=500, media_type="text/xml")
        return Response(_soap_answer(ticket_id), media_type="text/xml; charset=utf-8")

    if answer == "fast-path":  # where gateway/app.py installs PushFastPath: a middleware of the app
        app.add_middleware(FloorFastPath, answers={FLOOR_CITY_PATH: city, FLOOR_SOAP_PATH: province})
    return app


class FloorFastPath:
    """The two POSTs answered before FastAPI's routing, as `gateway/http/fast_path.py` answers the gateway's."""

    def __init__(self, app: ASGIApp, answers: dict[str, Callable[[Request], Awaitable[Response]]]) -> None:
        self.app = app
        self.answers = answers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        answer = self.answers.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if answer is None:
            await self.app(scope, receive, send)
            return
        response = await answer(Request(scope, receive))
        await response(scope, receive, send)


def _row(decided: Decided, raw: bytes, nonce: str | None) -> Row:
    ticket = decided.ticket
    return Row(ticket.ticket_id, ticket.source.source_ticket_no, decided.ticket_json.encode(), raw, nonce,
               ticket.complainant.phone, tuple((e.destination, e.body) for e in decided.outbox[1:]),
               tuple(decided.link_keys), to_ms(ticket.source.source_received_at), not decided.held)


def _soap_fault(reason: str) -> bytes:
    return (f'<soap:Envelope xmlns:soap="{SOAP11_ENV}"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode>'
            f"<faultstring>{reason}</faultstring></soap:Fault></soap:Body></soap:Envelope>").encode()


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8398)
    parser.add_argument("--store", choices=("sqlite", "redis", "none"), default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--answer", choices=("fast-path", "routes"), default="fast-path")
    parser.add_argument("--decide", action="store_true",
                        help="also make the gateway's business decisions (bench/floor/decisions.py; HIG_* settings)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--http", choices=("h11", "httptools"), default="h11")
    args = parser.parse_args()
    app = create_app(os.environ["FLOOR_API_KEY"], os.environ["FLOOR_SOAP_PASSWORD"], args.store,
                     Path(os.environ.get("FLOOR_DB", "floor.db")), args.redis_url, args.answer,
                     decide=args.decide)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_config=None, access_log=False, loop=args.loop,
                http=args.http, lifespan="on")


if __name__ == "__main__":
    main()
