"""The embedded store: one SQLite file in WAL mode, written by one connection on one dedicated thread."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path

from contracts.delivery import (
    AttemptReceipt,
    ClaimedDelivery,
    DeliveryReceipt,
    OutboxEntry,
    check_destination,
)
from contracts.errors import FieldError
from contracts.ticket import Ticket, TicketLink
from contracts.ulids import new_ulid
from gateway.store.base import (
    AlertRecord,
    AuditEntry,
    AuditQuery,
    DeliveryFilter,
    IntakeResult,
    LinkCandidate,
    LinkedIntake,
    LinkQuery,
    OnTimeCount,
    PartnerEcho,
    QuarantinedPayload,
    Relink,
    SourceNumber,
    Store,
    TicketQuery,
)
from gateway.store.records import attempt_to_record, errors_json, minute_start_ms, next_revision, to_ms
from gateway.store.sqlite import alerts, coordination, echo, lanes, operations, quarantine, tickets
from gateway.store.sqlite.executor import ACKNOWLEDGED_SYNC, Executor, Sync
from gateway.store.sqlite.link_log import DEFAULT_WINDOW_DAYS, LinkLog, horizon_of
from gateway.store.sqlite.schema import check_phone_key, migrate
from gateway.store.ticket_index import link_numbers

log = logging.getLogger(__name__)


class SqliteStore(Store):
    """Tickets, lanes and small coordination records in one SQLite file, for a single node.

    Each operation picks where its statements run (docs/sqlite-store.md): intake and enqueue share group
    commits on the store's thread at the acknowledged durability; claims, settles, releases and nonces run in
    place on the event loop's own connection; everything else is a job of its own on the store's thread.
    """

    def __init__(self, path: Path | str, phone_hash_key: bytes, *,
                 acknowledged_sync: Sync = ACKNOWLEDGED_SYNC, busy_timeout_s: float = 10.0,
                 checkpoint_every: int = 500, link_window_days: int = DEFAULT_WINDOW_DAYS) -> None:
        self.path = Path(path)
        self._phone_key = phone_hash_key
        self._links = LinkLog(horizon_of(link_window_days))  # read from the file by warm_up or the first look-up
        self._executor = Executor(self.path, acknowledged_sync=acknowledged_sync,
                                  busy_timeout_ms=int(busy_timeout_s * 1000), checkpoint_every=checkpoint_every)

    # -- life cycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        await self._executor.open(self._prepare)

    def _prepare(self, db: sqlite3.Connection) -> None:
        migrate(db, self.path)
        check_phone_key(db, self._phone_key, self.path)

    async def warm_up(self) -> None:
        """The link index read from `link_log` into this process's memory (else the first intake waits for it)."""
        started = time.perf_counter()
        rows = await self._executor.run(lambda: self._links.catch_up(self._executor.db))
        log.info("link index read", extra={"rows": rows, "seconds": round(time.perf_counter() - started, 3)})

    async def close(self) -> None:
        await self._executor.close()

    async def health(self) -> dict[str, object]:
        return await self._executor.run(self._executor.health)

    # -- tickets ----------------------------------------------------------------------------------
    async def intake(self, ticket: Ticket, raw_body: bytes, raw_content_type: str,
                     outbox: list[OutboxEntry], *, ticket_json: str | None = None,
                     link_marks: Sequence[str] = ()) -> IntakeResult:
        return await self._executor.grouped(
            functools.partial(tickets.intake, ticket, tickets.checked_body(ticket, outbox, ticket_json), raw_body,
                              raw_content_type, outbox, self._phone_key, self._links,
                              link_keys=link_numbers(link_marks, self._phone_key)),
            acknowledged=True)

    async def intake_linking(self, ticket: Ticket, raw_body: bytes, raw_content_type: str, outbox: list[OutboxEntry],
                             query: LinkQuery, relink: Relink, *, ticket_json: str | None = None,
                             link_marks: Sequence[str] = ()) -> LinkedIntake:
        # One job of intake's group transaction: `relink` (pure: scoring and the outbox) runs on the store thread.
        # The marks are hashed once when the ticket is indexed under those it is looked up by (intake's case).
        query_keys = link_numbers(query.marks, self._phone_key)
        keys = query_keys if tuple(link_marks) == query.marks else link_numbers(link_marks, self._phone_key)
        body = tickets.checked_body(ticket, outbox, ticket_json)
        return await self._executor.grouped(
            functools.partial(tickets.intake_linking, ticket, body, raw_body, raw_content_type, outbox,
                              self._phone_key, self._links, query, query_keys, relink, link_keys=keys),
            acknowledged=True)

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        return await tickets.get_ticket(self._executor, ticket_id)

    async def find_ticket_id(self, *, idempotency_key: str | None = None,
                             national_registration_no: str | None = None,
                             source: SourceNumber | None = None) -> str | None:
        return await tickets.find_ticket_id(self._executor, idempotency_key=idempotency_key,
                                            national_registration_no=national_registration_no, source=source)

    async def save_ticket(self, ticket: Ticket, outbox: list[OutboxEntry], *,
                          expected_revision: int | None = None) -> tuple[str, ...]:
        for entry in outbox:
            check_destination(entry.destination)
        saved = next_revision(ticket, expected_revision)
        return await self._executor.write(
            functools.partial(tickets.save, saved, saved.model_dump_json(), outbox, expected_revision,
                              self._phone_key),
            acknowledged=True)

    async def add_links_back(self, links: Mapping[str, TicketLink], *, most: int) -> list[str]:
        if not links:
            return []
        return await self._executor.write(
            functools.partial(tickets.add_links_back, dict(links), most), acknowledged=True)

    async def search_tickets(self, query: TicketQuery) -> list[Ticket]:
        return await tickets.search_tickets(self._executor, query, self._phone_key)

    async def count_tickets(self, query: TicketQuery) -> int:
        return await tickets.count_tickets(self._executor, query, self._phone_key)

    async def on_time_counts(self, first_day: date, last_day: date) -> list[OnTimeCount]:
        return await tickets.on_time_counts(self._executor, first_day, last_day)

    async def get_raw_payload(self, ticket_id: str, key: str | None = None) -> tuple[bytes, str] | None:
        return await tickets.get_raw_payload(self._executor, ticket_id, key)

    async def keep_raw_payload(self, ticket_id: str, key: str, body: bytes, content_type: str) -> None:
        await self._executor.write(functools.partial(tickets.keep_raw_payload, ticket_id, key, body, content_type))

    async def find_link_candidates(self, query: LinkQuery) -> list[LinkCandidate]:
        return await tickets.find_link_candidates(self._executor, self._links, query, self._phone_key)

    # -- quarantine -------------------------------------------------------------------------------
    async def quarantine(self, adapter_id: str, body: bytes, content_type: str,
                         errors: list[FieldError]) -> str:
        return await self._executor.write(
            functools.partial(quarantine.insert, new_ulid(), adapter_id, body, content_type, errors_json(errors)),
            acknowledged=True)

    async def get_quarantined(self, quarantine_id: str) -> QuarantinedPayload | None:
        return await quarantine.get_quarantined(self._executor, quarantine_id)

    async def list_quarantined(self, adapter_id: str | None = None, limit: int = 100) -> list[QuarantinedPayload]:
        return await quarantine.list_quarantined(self._executor, adapter_id, limit)

    async def resolve_quarantined(self, quarantine_id: str, ticket_id: str) -> None:
        await self._executor.write(functools.partial(quarantine.resolve, quarantine_id, ticket_id),
                                   acknowledged=True)

    async def return_quarantined(self, quarantine_id: str, notes: list[FieldError]) -> None:
        await self._executor.write(functools.partial(quarantine.note_returned, quarantine_id, errors_json(notes)),
                                   acknowledged=True)

    # -- delivery lanes ---------------------------------------------------------------------------
    async def enqueue(self, ticket_id: str, idempotency_key: str, entries: list[OutboxEntry]) -> tuple[str, ...]:
        for entry in entries:
            check_destination(entry.destination)
        return await self._executor.grouped(functools.partial(lanes.enqueue, ticket_id, idempotency_key, entries),
                                            acknowledged=True)

    async def claim(self, destination: str, worker_id: str, lease_seconds: float,
                    limit: int = 1) -> list[ClaimedDelivery]:
        return await self._executor.in_place(
            functools.partial(lanes.claim, destination, worker_id, lease_seconds, limit))

    async def settle_delivered(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None:
        await self._settle(claim, attempt, lanes.DELIVERED, None)

    async def settle_retry(self, claim: ClaimedDelivery, attempt: AttemptReceipt, due_at: datetime) -> None:
        await self._settle(claim, attempt, lanes.RETRYING, to_ms(due_at))

    async def settle_dead(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None:
        await self._settle(claim, attempt, lanes.DEAD, None)

    async def _settle(self, claim: ClaimedDelivery, attempt: AttemptReceipt, state: str, due_at: int | None) -> None:
        await self._executor.in_place(
            functools.partial(lanes.settle, claim, attempt_to_record(claim, attempt), state, due_at))

    async def release(self, claim: ClaimedDelivery) -> bool:
        return await self._executor.in_place(functools.partial(lanes.release, claim))

    async def reap_expired_leases(self, now: datetime) -> int:
        return await self._executor.write(functools.partial(lanes.reap_expired_leases, to_ms(now)))

    async def get_delivery(self, delivery_id: str) -> DeliveryReceipt | None:
        return await lanes.get_delivery(self._executor, delivery_id)

    async def list_deliveries(self, flt: DeliveryFilter) -> list[DeliveryReceipt]:
        return await lanes.list_deliveries(self._executor, flt)

    async def list_attempts(self, delivery_id: str) -> list[AttemptReceipt]:
        return await lanes.list_attempts(self._executor, delivery_id)

    async def replay(self, flt: DeliveryFilter | None = None, delivery_ids: list[str] | None = None,
                     dry_run: bool = False) -> list[str]:
        return await self._executor.run(lanes.replay, self._executor, flt, delivery_ids, dry_run)

    async def compact_delivered(self, created_before: datetime, limit: int = 500) -> int:
        return await self._executor.grouped(functools.partial(lanes.compact_delivered, to_ms(created_before), limit),
                                            acknowledged=False)

    async def lane_stats(self) -> dict[str, dict[str, float]]:
        return await self._executor.run(lanes.lane_stats, self._executor)

    async def watch_lanes(self, wake: Callable[[str | None], None]) -> None:
        """One node: lanes find work by their idle polling (the gateway's own intake is on the same machine)."""

    # -- the sender's echo (written by the lane writes above) ------------------------------------------------
    async def get_echo(self, ticket_id: str) -> PartnerEcho | None:
        return await echo.get_echo(self._executor, ticket_id)

    async def list_behind(self, behind_before: datetime, limit: int = 100) -> list[PartnerEcho]:
        return await echo.list_behind(self._executor, behind_before, limit)

    async def count_behind(self, behind_before: datetime) -> int:
        return await echo.count_behind(self._executor, behind_before)

    # -- operations: audit log, per-minute counts, intake totals ---------------------------------------
    async def append_audit(self, entry: AuditEntry) -> str:
        entry_id = new_ulid()
        detail = json.dumps(dict(entry.detail), ensure_ascii=False, default=str)
        await self._executor.write(functools.partial(operations.append_audit, entry_id, entry, detail),
                                   acknowledged=True)
        return entry_id

    async def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        return await operations.list_audit(self._executor, query)

    async def add_counts(self, counts: Mapping[datetime, Mapping[str, int]]) -> None:
        rows = [(minute_start_ms(minute), name, int(n)) for minute, by_name in counts.items()
                for name, n in by_name.items() if n]
        if rows:
            await self._executor.write(functools.partial(operations.add_counts, rows))

    async def read_counts(self, since: datetime, until: datetime | None = None) -> dict[datetime, dict[str, int]]:
        return await operations.read_counts(self._executor, since, until)

    async def intake_stats(self, adapter_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        return await self._executor.run(operations.intake_stats, self._executor, list(adapter_ids))

    # -- alerts -------------------------------------------------------------------------------------
    async def save_alert(self, alert: AlertRecord) -> None:
        await self._executor.write(functools.partial(alerts.save_alert, alert), acknowledged=True)

    async def list_alerts(self, *, firing_only: bool = False, limit: int = 100) -> list[AlertRecord]:
        return await alerts.list_alerts(self._executor, firing_only, limit)

    # -- pollers, locks, nonces -------------------------------------------------------------------
    async def get_cursor(self, adapter_id: str) -> str | None:
        return await coordination.get_cursor(self._executor, adapter_id)

    async def set_cursor(self, adapter_id: str, cursor: str) -> None:
        await self._executor.write(functools.partial(coordination.set_cursor, adapter_id, cursor))

    async def try_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        return await self._executor.write(functools.partial(coordination.try_lock, name, owner, ttl_seconds))

    async def release_lock(self, name: str, owner: str) -> None:
        await self._executor.write(functools.partial(coordination.release_lock, name, owner))

    async def lock_holder(self, name: str) -> str | None:
        return await coordination.lock_holder(self._executor, name)

    async def take_over_lock(self, name: str, stale_owner: str, owner: str, ttl_seconds: float) -> bool:
        return await self._executor.write(
            functools.partial(coordination.take_over_lock, name, stale_owner, owner, ttl_seconds))

    async def remember_nonce(self, scope: str, nonce: str, ttl_seconds: float) -> bool:
        # A short write at synchronous=NORMAL, as a claim is: in place, on the loop writer's connection.
        return await self._executor.in_place(
            functools.partial(coordination.remember_nonce, scope, nonce, ttl_seconds))
