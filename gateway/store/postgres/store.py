"""The relational store: every role on one PostgreSQL database, for several gateway processes on several machines."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime

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
    LinkQuery,
    OnTimeCount,
    PartnerEcho,
    QuarantinedPayload,
    SourceNumber,
    Store,
    TicketQuery,
)
from gateway.store.errors import StoreError
from gateway.store.postgres import alerts, coordination, echo, lanes, operations, quarantine, tickets
from gateway.store.postgres.connection import Connections, LaneListener, PoolSettings, redacted
from gateway.store.postgres.schema import check_phone_key, migrate
from gateway.store.records import attempt_to_record, errors_json, next_revision


class PostgresStore(Store):
    """Tickets, lanes and coordination records in one PostgreSQL schema (docs/postgres-store.md).

    Opening applies the schema's pending migrations (and refuses a schema newer than this gateway). Every
    operation is one statement or one transaction on a connection of the pool; claims take rows with FOR UPDATE
    SKIP LOCKED, and a LISTEN connection wakes lanes when another process enqueues.
    """

    def __init__(self, settings: PoolSettings, phone_hash_key: bytes) -> None:
        self.settings = settings
        self._phone_key = phone_hash_key
        self._db = Connections(settings)  # intake, ticket saves, quarantine, audit: acknowledged, flushed at commit
        self._lanes = Connections(settings, acknowledged=False)  # claims, settles, releases, nonces, lane counts
        self._listeners: list[LaneListener] = []

    # -- life cycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        await self._db.open()
        try:
            async with self._db.connection() as conn:
                await migrate(conn, self.settings.schema)
                await check_phone_key(conn, self._phone_key, self.settings.schema)
            await self._lanes.open()
        except BaseException:
            await self._db.close()
            raise

    async def close(self) -> None:
        for listener in self._listeners:
            await listener.close()
        self._listeners.clear()
        await self._lanes.close()
        await self._db.close()

    async def health(self) -> dict[str, object]:
        about: dict[str, object] = {"kind": "postgres", "url": redacted(self.settings.url),
                                    "schema": self.settings.schema, "pool_size": self.settings.size}
        try:
            async with self._db.connection() as conn:
                fsync = await conn.fetchval("SHOW fsync")
                synchronous_commit = await conn.fetchval("SHOW synchronous_commit")
                version = await conn.fetchval("SHOW server_version")
                standby = await conn.fetchval("SELECT pg_is_in_recovery()")
                schema_version = await conn.fetchval("SELECT max(version) FROM schema_migrations")
        except StoreError as err:  # unreachable or every connection busy: say so, never raise
            return {**about, "reachable": False, "writable": False, "persistent": False,
                    "warnings": [f"PostgreSQL does not answer: {err}"]}
        warnings: list[str] = []
        if standby:
            warnings.append("PostgreSQL is a standby (in recovery): no writes; point the gateway at the primary")
        if fsync != "on":
            warnings.append("PostgreSQL runs with fsync=off: a crash of the machine can lose or corrupt data")
        if synchronous_commit == "off":
            warnings.append("synchronous_commit=off: a crash of PostgreSQL can lose the last acknowledged tickets")
        return {**about, "reachable": True, "writable": not standby,
                "persistent": fsync == "on" and synchronous_commit != "off", "warnings": warnings,
                "server_version": version, "schema_version": schema_version}

    # -- tickets ----------------------------------------------------------------------------------
    async def intake(self, ticket: Ticket, raw_body: bytes, raw_content_type: str,
                     outbox: list[OutboxEntry], *, ticket_json: str | None = None,
                     link_marks: Sequence[str] = ()) -> IntakeResult:
        for entry in outbox:
            check_destination(entry.destination)
        body = ticket.model_dump_json() if ticket_json is None else ticket_json
        return await tickets.intake(self._db, ticket, body, raw_body, raw_content_type, outbox, self._phone_key,
                                    link_marks)

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        return await tickets.get_ticket(self._db, ticket_id)

    async def find_ticket_id(self, *, idempotency_key: str | None = None,
                             national_registration_no: str | None = None,
                             source: SourceNumber | None = None) -> str | None:
        return await tickets.find_ticket_id(self._db, idempotency_key=idempotency_key,
                                            national_registration_no=national_registration_no, source=source)

    async def save_ticket(self, ticket: Ticket, outbox: list[OutboxEntry], *,
                          expected_revision: int | None = None) -> tuple[str, ...]:
        for entry in outbox:
            check_destination(entry.destination)
        saved = next_revision(ticket, expected_revision)
        return await tickets.save(self._db, saved, saved.model_dump_json(), outbox, expected_revision,
                                  self._phone_key)

    async def add_links_back(self, links: Mapping[str, TicketLink], *, most: int) -> list[str]:
        if not links:
            return []
        return await tickets.add_links_back(self._db, links, most, self._phone_key)

    async def search_tickets(self, query: TicketQuery) -> list[Ticket]:
        return await tickets.search_tickets(self._db, query, self._phone_key)

    async def count_tickets(self, query: TicketQuery) -> int:
        return await tickets.count_tickets(self._db, query, self._phone_key)

    async def on_time_counts(self, first_day: date, last_day: date) -> list[OnTimeCount]:
        return await tickets.on_time_counts(self._db, first_day, last_day)

    async def get_raw_payload(self, ticket_id: str, key: str | None = None) -> tuple[bytes, str] | None:
        return await tickets.get_raw_payload(self._db, ticket_id, key)

    async def keep_raw_payload(self, ticket_id: str, key: str, body: bytes, content_type: str) -> None:
        await tickets.keep_raw_payload(self._db, ticket_id, key, body, content_type)

    async def find_link_candidates(self, query: LinkQuery) -> list[LinkCandidate]:
        return await tickets.find_link_candidates(self._db, query, self._phone_key)

    # -- quarantine -------------------------------------------------------------------------------
    async def quarantine(self, adapter_id: str, body: bytes, content_type: str,
                         errors: list[FieldError]) -> str:
        return await quarantine.insert(self._db, new_ulid(), adapter_id, body, content_type, errors_json(errors))

    async def get_quarantined(self, quarantine_id: str) -> QuarantinedPayload | None:
        return await quarantine.get_quarantined(self._db, quarantine_id)

    async def list_quarantined(self, adapter_id: str | None = None, limit: int = 100) -> list[QuarantinedPayload]:
        return await quarantine.list_quarantined(self._db, adapter_id, limit)

    async def resolve_quarantined(self, quarantine_id: str, ticket_id: str) -> None:
        await quarantine.resolve(self._db, quarantine_id, ticket_id)

    async def return_quarantined(self, quarantine_id: str, notes: list[FieldError]) -> None:
        await quarantine.note_returned(self._db, quarantine_id, errors_json(notes))

    # -- delivery lanes ---------------------------------------------------------------------------
    async def enqueue(self, ticket_id: str, idempotency_key: str, entries: list[OutboxEntry]) -> tuple[str, ...]:
        for entry in entries:
            check_destination(entry.destination)
        return await lanes.enqueue(self._db, ticket_id, idempotency_key, entries)

    async def claim(self, destination: str, worker_id: str, lease_seconds: float,
                    limit: int = 1) -> list[ClaimedDelivery]:
        return await lanes.claim(self._lanes, destination, worker_id, lease_seconds, limit)

    async def settle_delivered(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None:
        await lanes.settle(self._lanes, claim, attempt_to_record(claim, attempt), lanes.DELIVERED, None)

    async def settle_retry(self, claim: ClaimedDelivery, attempt: AttemptReceipt, due_at: datetime) -> None:
        await lanes.settle(self._lanes, claim, attempt_to_record(claim, attempt), lanes.RETRYING, due_at)

    async def settle_dead(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None:
        await lanes.settle(self._lanes, claim, attempt_to_record(claim, attempt), lanes.DEAD, None)

    async def release(self, claim: ClaimedDelivery) -> bool:
        return await lanes.release(self._lanes, claim)

    async def reap_expired_leases(self, now: datetime) -> int:
        reaped = await lanes.reap_expired_leases(self._db, now)
        await lanes.fold_lane_counts(self._lanes)  # so that the counts stay a few rows where nobody reads them
        return reaped

    async def get_delivery(self, delivery_id: str) -> DeliveryReceipt | None:
        return await lanes.get_delivery(self._db, delivery_id)

    async def list_deliveries(self, flt: DeliveryFilter) -> list[DeliveryReceipt]:
        return await lanes.list_deliveries(self._db, flt)

    async def list_attempts(self, delivery_id: str) -> list[AttemptReceipt]:
        return await lanes.list_attempts(self._db, delivery_id)

    async def replay(self, flt: DeliveryFilter | None = None, delivery_ids: list[str] | None = None,
                     dry_run: bool = False) -> list[str]:
        return await lanes.replay(self._db, flt, delivery_ids, dry_run)

    async def compact_delivered(self, created_before: datetime, limit: int = 500) -> int:
        return await lanes.compact_delivered(self._db, created_before, limit)

    async def lane_stats(self) -> dict[str, dict[str, float]]:
        return await lanes.lane_stats(self._lanes)  # its fold need not wait for a flush: lost whole if lost

    async def watch_lanes(self, wake: Callable[[str | None], None]) -> None:
        listener = LaneListener(self.settings, wake)
        listener.start()
        self._listeners.append(listener)

    # -- the sender's echo (written by the lane writes above) ------------------------------------------------
    async def get_echo(self, ticket_id: str) -> PartnerEcho | None:
        return await echo.get_echo(self._db, ticket_id)

    async def list_behind(self, behind_before: datetime, limit: int = 100) -> list[PartnerEcho]:
        return await echo.list_behind(self._db, behind_before, limit)

    async def count_behind(self, behind_before: datetime) -> int:
        return await echo.count_behind(self._db, behind_before)

    # -- alerts ------------------------------------------------------------------------------------------
    async def save_alert(self, alert: AlertRecord) -> None:
        await alerts.save_alert(self._db, alert)

    async def list_alerts(self, *, firing_only: bool = False, limit: int = 100) -> list[AlertRecord]:
        return await alerts.list_alerts(self._db, firing_only, limit)

    # -- operations: audit log, per-minute counts, intake totals ---------------------------------------
    async def append_audit(self, entry: AuditEntry) -> str:
        entry_id = new_ulid()
        detail = json.dumps(dict(entry.detail), ensure_ascii=False, default=str)
        await operations.append_audit(self._db, entry_id, entry, detail)
        return entry_id

    async def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        return await operations.list_audit(self._db, query)

    async def add_counts(self, counts: Mapping[datetime, Mapping[str, int]]) -> None:
        await operations.add_counts(self._db, counts)

    async def read_counts(self, since: datetime, until: datetime | None = None) -> dict[datetime, dict[str, int]]:
        return await operations.read_counts(self._db, since, until)

    async def intake_stats(self, adapter_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        return await operations.intake_stats(self._db, adapter_ids)

    # -- pollers, locks, nonces -------------------------------------------------------------------
    async def get_cursor(self, adapter_id: str) -> str | None:
        return await coordination.get_cursor(self._db, adapter_id)

    async def set_cursor(self, adapter_id: str, cursor: str) -> None:
        await coordination.set_cursor(self._db, adapter_id, cursor)

    async def try_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        return await coordination.try_lock(self._db, name, owner, ttl_seconds)

    async def release_lock(self, name: str, owner: str) -> None:
        await coordination.release_lock(self._db, name, owner)

    async def lock_holder(self, name: str) -> str | None:
        return await coordination.lock_holder(self._db, name)

    async def take_over_lock(self, name: str, stale_owner: str, owner: str, ttl_seconds: float) -> bool:
        return await coordination.take_over_lock(self._db, name, stale_owner, owner, ttl_seconds)

    async def remember_nonce(self, scope: str, nonce: str, ttl_seconds: float) -> bool:
        return await coordination.remember_nonce(self._lanes, scope, nonce, ttl_seconds)
