"""The Redis store's tickets: intake and save as one script each in the `{tickets}` slot, lookup, search."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import cast

from contracts.delivery import OutboxEntry
from contracts.ticket import Ticket
from gateway.store.base import IntakeResult, TicketQuery, TicketStore
from gateway.store.errors import ConcurrentUpdate, UnknownTicket
from gateway.store.records import next_revision, now_ms, to_ms
from gateway.store.redis import lua
from gateway.store.redis.connection import RedisConnection, outbox_args, text
from gateway.store.ticket_index import TICKET_INDEXES, query_index_values, ticket_index_values


class RedisTickets(RedisConnection, TicketStore):
    """Tickets, raw payloads, idempotency records and search indexes, all in the `{tickets}` slot."""

    def _index_args(self, ticket: Ticket) -> list[str | bytes | int]:
        values = ticket_index_values(ticket, self._phone_key)
        args: list[str | bytes | int] = [self.keys.index_prefix, len(TICKET_INDEXES)]
        for name in TICKET_INDEXES:
            args += [name, values[name] or ""]
        return args

    async def intake(self, ticket: Ticket, raw_body: bytes, raw_content_type: str,
                     outbox: list[OutboxEntry], *, ticket_json: str | None = None) -> IntakeResult:
        assert ticket.idempotency_key is not None  # the contract fills it in
        ids, entry_args = outbox_args(outbox, ticket.idempotency_key)
        now = now_ms()
        k = self.keys
        reply = await self._eval(
            lua.INTAKE,
            [k.idempotency(ticket.idempotency_key), k.ticket(ticket.ticket_id), k.raw(ticket.ticket_id),
             k.tickets_by_time, k.outbox, k.delivery_lanes, k.ticket_deliveries(ticket.ticket_id)],
            [ticket.ticket_id, ticket.model_dump_json() if ticket_json is None else ticket_json,
             ticket.lifecycle.revision, now, raw_body,
             raw_content_type, *self._index_args(ticket), *entry_args],
        )
        if int(reply[0]) == 0:
            return IntakeResult(ticket_id=text(reply[1]), created=False)
        await self._relay_new(reply[1:], ids, entry_args, ticket.ticket_id, now)
        return IntakeResult(ticket_id=ticket.ticket_id, created=True, delivery_ids=tuple(ids))

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        body = await cast(Awaitable[bytes | None], self.redis.hget(self.keys.ticket(ticket_id), "json"))
        return Ticket.model_validate_json(body) if body is not None else None

    async def find_ticket_id(self, *, idempotency_key: str | None = None,
                             national_registration_no: str | None = None) -> str | None:
        if idempotency_key is not None:
            found = await self.redis.get(self.keys.idempotency(idempotency_key))
            return text(found) if found is not None else None
        if national_registration_no is None:
            raise ValueError("find_ticket_id needs idempotency_key or national_registration_no")
        members = await cast(Awaitable[set[bytes]], self.redis.smembers(
            self.keys.index("national_registration_no", national_registration_no)))
        if not members:
            return None
        ids = sorted(text(m) for m in members)
        scores = await self.redis.zmscore(self.keys.tickets_by_time, ids)
        return min(zip(scores, ids, strict=True), key=lambda p: (p[0] or 0, p[1]))[1]

    async def save_ticket(self, ticket: Ticket, outbox: list[OutboxEntry], *,
                          expected_revision: int | None = None) -> tuple[str, ...]:
        ticket = next_revision(ticket, expected_revision)
        idem = ticket.idempotency_key
        assert idem is not None  # the contract fills it in
        ids, entry_args = outbox_args(outbox, idem)
        now = now_ms()
        k = self.keys
        reply = await self._eval(
            lua.SAVE_TICKET,
            [k.ticket(ticket.ticket_id), k.outbox, k.delivery_lanes, k.ticket_deliveries(ticket.ticket_id)],
            [ticket.ticket_id, ticket.model_dump_json(), ticket.lifecycle.revision,
             "" if expected_revision is None else expected_revision, now, *self._index_args(ticket), *entry_args],
        )
        status = int(reply[0])
        if status == -1:
            raise UnknownTicket(ticket.ticket_id)
        if status == -2:
            raise ConcurrentUpdate(
                f"ticket {ticket.ticket_id} is at revision {text(reply[1])}, not {expected_revision}"
            )
        await self._relay_new(reply[1:], ids, entry_args, ticket.ticket_id, now)
        return tuple(ids)

    async def search_tickets(self, query: TicketQuery) -> list[Ticket]:
        sets = [self.keys.index(name, value) for name, value in query_index_values(query, self._phone_key).items()]
        low = to_ms(query.since) if query.since else None
        high = to_ms(query.until) if query.until else None
        if sets:
            members = await cast(Awaitable[set[bytes]], self.redis.sinter(sets))
            ids = [text(m) for m in members]
            scores = await self.redis.zmscore(self.keys.tickets_by_time, ids) if ids else []
            hits = [(score, tid) for score, tid in zip(scores, ids, strict=True) if score is not None
                    and (low is None or score >= low) and (high is None or score < high)]
            hits.sort(reverse=True)
            chosen = [tid for _, tid in hits[:query.limit]]
        else:
            raw_ids = await self.redis.zrevrangebyscore(
                self.keys.tickets_by_time, "+inf" if high is None else f"({high}",
                "-inf" if low is None else low, start=0, num=query.limit,
            )
            chosen = [text(t) for t in raw_ids]
        if not chosen:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tid in chosen:
                pipe.hget(self.keys.ticket(tid), "json")
            bodies = await pipe.execute()
        return [Ticket.model_validate_json(b) for b in bodies if b is not None]

    async def get_raw_payload(self, ticket_id: str) -> tuple[bytes, str] | None:
        body, ctype = await cast(Awaitable[list[bytes | None]],
                                 self.redis.hmget(self.keys.raw(ticket_id), ["body", "ctype"]))
        return (body, text(ctype)) if body is not None else None
