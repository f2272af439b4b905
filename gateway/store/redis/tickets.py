"""The Redis store's tickets: intake and save as one script each in the `{tickets}` slot, lookup, search."""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any, cast

from contracts.delivery import OutboxEntry
from contracts.ticket import Ticket, TicketLink
from gateway.store.base import (
    IntakeResult,
    LinkCandidate,
    LinkQuery,
    OnTimeCount,
    SourceNumber,
    TicketQuery,
    TicketStore,
)
from gateway.store.errors import ConcurrentUpdate, UnknownTicket
from gateway.store.records import next_revision, now_ms, to_ms, with_link_back
from gateway.store.redis import lua
from gateway.store.redis.connection import RedisConnection, outbox_args, text
from gateway.store.ticket_index import (
    TICKET_INDEXES,
    ended_limits,
    link_keys,
    next_due_on,
    query_index_values,
    ticket_index_values,
)

# Reads and saves of the tickets a new ticket links back to, while status events and forwards write them too.
LINK_BACK_TRIES = 5


class RedisTickets(RedisConnection, TicketStore):
    """Tickets, raw payloads, idempotency records and search indexes, all in the `{tickets}` slot."""

    def _deadline_args(self, ticket: Ticket) -> list[str | bytes | int]:
        """The ticket's earliest running due day (ordinal, '' for none), its ended limits as on-time lines, the
        prefix of the per-day on-time hashes."""
        due = next_due_on(ticket)
        ended = "".join(f"{e.ended_on.isoformat()}\t{e.handler_org_code}\t{e.handler_org_name}\t{e.kind}"
                        f"\t{e.outcome}\n" for e in ended_limits(ticket))
        return ["" if due is None else due.toordinal(), ended, self.keys.on_time_prefix]

    def _index_args(self, ticket: Ticket) -> list[str | bytes | int]:
        values = ticket_index_values(ticket, self._phone_key)
        args: list[str | bytes | int] = [self.keys.index_prefix, len(TICKET_INDEXES)]
        for name in TICKET_INDEXES:
            args += [name, values[name] or ""]
        return args

    async def intake(self, ticket: Ticket, raw_body: bytes, raw_content_type: str,
                     outbox: list[OutboxEntry], *, ticket_json: str | None = None,
                     link_marks: Sequence[str] = ()) -> IntakeResult:
        assert ticket.idempotency_key is not None  # the contract fills it in
        ids, entry_args = outbox_args(outbox, ticket.idempotency_key)
        now = now_ms()
        reply = await self._eval(lua.INTAKE, *self._intake_call(ticket, raw_body, raw_content_type, entry_args, now,
                                                                ticket_json=ticket_json, link_marks=link_marks))
        return await self._intake_done(reply, ticket, ids, entry_args, now)

    async def _intake_done(self, reply: list[Any], ticket: Ticket, ids: list[str], entry_args: list[Any],
                           now: int) -> IntakeResult:
        """INTAKE's reply answered: a repeat, another version's number, or the new ticket's deliveries relayed."""
        if int(reply[0]) != 1:
            return IntakeResult(ticket_id=text(reply[1]), created=False, number_taken=int(reply[0]) == 2)
        if self.wait_aof:
            await self._wait_aof()
        await self._relay_new(reply[1:], ids, entry_args, ticket.ticket_id, now)
        return IntakeResult(ticket_id=ticket.ticket_id, created=True, delivery_ids=tuple(ids))

    async def intake_unless_candidates(self, ticket: Ticket, raw_body: bytes, raw_content_type: str,
                                       outbox: list[OutboxEntry], query: LinkQuery, *, ticket_json: str | None = None,
                                       link_marks: Sequence[str] = ()) -> IntakeResult | list[LinkCandidate]:
        lookup = link_keys(query.marks, self._phone_key)
        if not lookup or query.limit <= 0:
            return await self.intake(ticket, raw_body, raw_content_type, outbox, ticket_json=ticket_json,
                                     link_marks=link_marks)
        # One script, one round trip for the look-up and the intake of a ticket with no candidate (most tickets).
        assert ticket.idempotency_key is not None  # the contract fills it in
        ids, entry_args = outbox_args(outbox, ticket.idempotency_key)
        now = now_ms()
        keys, args = self._intake_call(ticket, raw_body, raw_content_type, entry_args, now, ticket_json=ticket_json,
                                       link_marks=link_marks)
        args += [to_ms(query.until), to_ms(query.since), query.limit, self.keys.ticket(""), *_counted(lookup)]
        reply = await self._eval(lua.INTAKE_UNLESS_CANDIDATES, keys, args)
        if int(reply[0]) == 3:
            return [LinkCandidate.model_validate_json(body) for body in reply[1:]]
        return await self._intake_done(reply, ticket, ids, entry_args, now)

    def _intake_call(self, ticket: Ticket, raw_body: bytes, raw_content_type: str, entry_args: list[Any], now: int,
                     *, ticket_json: str | None, link_marks: Sequence[str]) -> tuple[list[str], list[Any]]:
        """The keys and arguments of the INTAKE script for one ticket (bench/links fills a store with them)."""
        assert ticket.idempotency_key is not None
        k = self.keys
        keys = [k.idempotency(ticket.idempotency_key), k.ticket(ticket.ticket_id), k.raw(ticket.ticket_id),
                k.tickets_by_time, k.outbox, k.delivery_lanes, k.ticket_deliveries(ticket.ticket_id), k.tickets_by_due,
                k.source_numbers]
        args = [ticket.ticket_id, ticket.model_dump_json() if ticket_json is None else ticket_json,
                ticket.lifecycle.revision, now, raw_body, raw_content_type, *self._deadline_args(ticket),
                *self._index_args(ticket), *entry_args,
                k.link_prefix, to_ms(ticket.source.source_received_at),
                *_counted(link_keys(link_marks, self._phone_key)),
                k.source_number_field(ticket.source.source_system, ticket.source.source_ticket_no)]
        return keys, args

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        body = await cast(Awaitable[bytes | None], self.redis.hget(self.keys.ticket(ticket_id), "json"))
        return Ticket.model_validate_json(body) if body is not None else None

    async def find_ticket_id(self, *, idempotency_key: str | None = None,
                             national_registration_no: str | None = None,
                             source: SourceNumber | None = None) -> str | None:
        if source is not None:
            holder = await cast(Awaitable[bytes | None], self.redis.hget(
                self.keys.source_numbers, self.keys.source_number_field(source.source_system, source.source_ticket_no)))
            return text(holder) if holder is not None else None
        if idempotency_key is not None:
            found = await self.redis.get(self.keys.idempotency(idempotency_key))
            return text(found) if found is not None else None
        if national_registration_no is None:
            raise ValueError("find_ticket_id needs idempotency_key, national_registration_no or source")
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
        reply = await self._eval(lua.SAVE_TICKET, *self._save_call(ticket, expected_revision, entry_args, now))
        status = int(reply[0])
        if status == -1:
            raise UnknownTicket(ticket.ticket_id)
        if status == -2:
            raise ConcurrentUpdate(
                f"ticket {ticket.ticket_id} is at revision {text(reply[1])}, not {expected_revision}"
            )
        await self._relay_new(reply[1:], ids, entry_args, ticket.ticket_id, now)
        return tuple(ids)

    def _save_call(self, ticket: Ticket, expected_revision: int | None, entry_args: list[Any],
                   now: int) -> tuple[list[str], list[Any]]:
        """SAVE_TICKET's keys and arguments for `ticket` (at its new revision already)."""
        k = self.keys
        return ([k.ticket(ticket.ticket_id), k.outbox, k.delivery_lanes, k.ticket_deliveries(ticket.ticket_id),
                 k.tickets_by_due],
                [ticket.ticket_id, ticket.model_dump_json(), ticket.lifecycle.revision,
                 "" if expected_revision is None else expected_revision, now, *self._deadline_args(ticket),
                 *self._index_args(ticket), *entry_args])

    async def add_links_back(self, links: Mapping[str, TicketLink], *, most: int) -> list[str]:
        changed: list[str] = []
        pending = dict(links)
        for _ in range(LINK_BACK_TRIES):
            if not pending:
                return changed
            ids = list(pending)
            async with self.redis.pipeline(transaction=False) as pipe:
                for tid in ids:
                    pipe.hget(self.keys.ticket(tid), "json")
                bodies = await pipe.execute()
            saves: list[tuple[str, tuple[list[str], list[Any]]]] = []
            now = now_ms()
            for tid, body in zip(ids, bodies, strict=True):
                read = None if body is None else Ticket.model_validate_json(body)
                shown = None if read is None else with_link_back(read, pending[tid], most)
                if read is not None and shown is not None:
                    revision = read.lifecycle.revision
                    no_outbox = [0]
                    saves.append((tid, self._save_call(next_revision(shown, revision), revision, no_outbox, now)))
            # Every save in one round trip, each one script (atomic); a ticket saved by another writer since it
            # was read (-2) is read and tried again.
            replies = await self._eval_many(lua.SAVE_TICKET, [call for _, call in saves])
            retry = {}
            for (tid, _), reply in zip(saves, replies, strict=True):
                if isinstance(reply, Exception):
                    raise reply
                if int(reply[0]) == -2:
                    retry[tid] = pending[tid]
                elif int(reply[0]) != -1:
                    changed.append(tid)
            pending = retry
        if pending:
            raise ConcurrentUpdate(f"tickets {sorted(pending)} kept changing while their links back were added")
        return changed

    async def _matching_ids(self, query: TicketQuery, limit: int | None) -> list[str]:
        """Ids of the tickets matching the query, in its order; at most `limit` (None: all)."""
        sets = [self.keys.index(name, value) for name, value in query_index_values(query, self._phone_key).items()]
        low = to_ms(query.since) if query.since else None
        high = to_ms(query.until) if query.until else None
        due_low = query.due_from.toordinal() if query.due_from else None
        due_high = query.due_before.toordinal() if query.due_before else None
        by_due = query.order == "due" or due_low is not None or due_high is not None
        if by_due:
            # The due range first: a range of days holds few tickets, the exact sets may hold many.
            bottom, top = "-inf" if due_low is None else due_low, "+inf" if due_high is None else f"({due_high}"
            only_due = query.order == "due" and not sets and low is None and high is None and limit is not None
            by_due_key = self.keys.tickets_by_due
            if only_due:
                # The most pressing `limit`, and every ticket due on the last day they reach (newest first there).
                pairs = _scored(await self.redis.zrangebyscore(by_due_key, bottom, top, withscores=True,
                                                               start=0, num=limit))
                if pairs and len(pairs) == limit:
                    last = pairs[-1][1]
                    pairs = [p for p in pairs if p[1] < last] + _scored(
                        await self.redis.zrangebyscore(by_due_key, last, last, withscores=True))
            else:
                pairs = _scored(await self.redis.zrangebyscore(by_due_key, bottom, top, withscores=True))
            due_of = dict(pairs)
            ids = list(due_of)
            for key in sets:
                if not ids:
                    break
                inside = await self.redis.smismember(key, ids)
                ids = [tid for tid, yes in zip(ids, inside, strict=True) if yes]
        elif sets:
            ids = [text(m) for m in await cast(Awaitable[set[bytes]], self.redis.sinter(sets))]
        else:
            if limit is None:
                return [text(t) for t in await self.redis.zrangebyscore(
                    self.keys.tickets_by_time, "-inf" if low is None else low, "+inf" if high is None else f"({high}")]
            raw_ids = await self.redis.zrevrangebyscore(
                self.keys.tickets_by_time, "+inf" if high is None else f"({high}",
                "-inf" if low is None else low, start=0, num=limit,
            )
            return [text(t) for t in raw_ids]
        scores = await self.redis.zmscore(self.keys.tickets_by_time, ids) if ids else []
        hits = [(score, tid) for score, tid in zip(scores, ids, strict=True) if score is not None
                and (low is None or score >= low) and (high is None or score < high)]
        hits.sort(reverse=True)  # newest first
        if query.order == "due":
            hits.sort(key=lambda h: due_of[h[1]])  # stable: newest first within a day
        chosen = [tid for _, tid in hits]
        return chosen if limit is None else chosen[:limit]

    async def search_tickets(self, query: TicketQuery) -> list[Ticket]:
        chosen = await self._matching_ids(query, query.limit)
        if not chosen:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for tid in chosen:
                pipe.hget(self.keys.ticket(tid), "json")
            bodies = await pipe.execute()
        return [Ticket.model_validate_json(b) for b in bodies if b is not None]

    async def find_link_candidates(self, query: LinkQuery) -> list[LinkCandidate]:
        keys = link_keys(query.marks, self._phone_key)
        if not keys or query.limit <= 0:
            return []
        # One script, one round trip: intake makes this call for every ticket.
        bodies = await self._eval(lua.LINK_CANDIDATES, [self.keys.link(key) for key in keys],
                                  [to_ms(query.until), to_ms(query.since), query.limit, self.keys.ticket("")])
        return [LinkCandidate.model_validate_json(body) for body in bodies]

    async def count_tickets(self, query: TicketQuery) -> int:
        if not query_index_values(query, self._phone_key) and query.since is None and query.until is None:
            if query.due_from is None and query.due_before is None:
                total: int = await self.redis.zcard(self.keys.tickets_by_time)
                return total
            low, high = query.due_from, query.due_before
            due: int = await self.redis.zcount(self.keys.tickets_by_due, "-inf" if low is None else low.toordinal(),
                                               "+inf" if high is None else f"({high.toordinal()}")
            return due
        return len(await self._matching_ids(query, None))

    async def on_time_counts(self, first_day: date, last_day: date) -> list[OnTimeCount]:
        days = [first_day + timedelta(days=n) for n in range((last_day - first_day).days + 1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for day in days:
                pipe.hgetall(self.keys.on_time(day.isoformat()))
            found: list[dict[bytes, bytes]] = await pipe.execute()
        totals: dict[tuple[str, str, str], dict[str, int]] = {}
        for counts in found:
            for field, value in counts.items():
                code, name, kind, outcome = text(field).split("\t")
                tally = totals.setdefault((code, name, kind), {"met": 0, "missed": 0})
                tally[outcome] += int(value)
        merged: dict[tuple[str, str], OnTimeCount] = {}
        for (code, name, kind), tally in sorted(totals.items()):
            if tally["met"] or tally["missed"]:
                seen = merged.get((code, kind))
                met, missed = tally["met"] + (seen.met if seen else 0), tally["missed"] + (seen.missed if seen else 0)
                merged[(code, kind)] = OnTimeCount(code, max(name, seen.handler_org_name if seen else ""), kind,
                                                   met, missed)
        return [merged[key] for key in sorted(merged)]

    async def get_raw_payload(self, ticket_id: str, key: str | None = None) -> tuple[bytes, str] | None:
        where = self.keys.raw(ticket_id) if key is None else self.keys.raw_version(ticket_id, key)
        body, ctype = await cast(Awaitable[list[bytes | None]], self.redis.hmget(where, ["body", "ctype"]))
        return (body, text(ctype)) if body is not None else None

    async def keep_raw_payload(self, ticket_id: str, key: str, body: bytes, content_type: str) -> None:
        stored = await self._eval(lua.KEEP_RAW_VERSION, [self.keys.ticket(ticket_id),
                                                         self.keys.raw_version(ticket_id, key)],
                                  [body, content_type, now_ms()])
        if int(stored) == 0:
            raise UnknownTicket(ticket_id)


def _counted(items: list[str]) -> list[str | int]:
    """A script's variable-length argument: the count, then the items."""
    return [len(items), *items]


def _scored(reply: object) -> list[tuple[str, float]]:
    """A WITHSCORES range reply as (member, score) pairs."""
    return [(text(member), float(score)) for member, score in cast(list[tuple[bytes, float]], reply)]
