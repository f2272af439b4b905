"""The store interface, one small ABC per role (tickets, quarantine, lanes, ops, coordination); Store joins them."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from types import TracebackType
from typing import Literal, Self

from contracts.delivery import AttemptReceipt, ClaimedDelivery, DeliveryReceipt, DeliveryState, OutboxEntry
from contracts.errors import FieldError
from contracts.ticket import Ticket, TicketLink
from gateway.store.errors import (
    ConcurrentUpdate,
    LeaseLost,
    PhoneKeyMismatch,
    StoreError,
    UnknownQuarantine,
    UnknownTicket,
)
from gateway.store.link_candidate import LinkCandidate

__all__ = [
    "COUNTS_RETENTION_S",
    "AlertLedger",
    "AlertRecord",
    "AuditEntry",
    "AuditQuery",
    "ConcurrentUpdate",
    "Coordination",
    "DeliveryFilter",
    "EchoStore",
    "IntakeResult",
    "LaneStore",
    "LeaseLost",
    "LinkCandidate",
    "LinkQuery",
    "LinkedIntake",
    "OnTimeCount",
    "OpsLedger",
    "PartnerEcho",
    "PhoneKeyMismatch",
    "QuarantineStore",
    "QuarantinedPayload",
    "Relink",
    "Relinked",
    "SourceNumber",
    "Store",
    "StoreError",
    "StoreLifecycle",
    "TicketQuery",
    "TicketStore",
    "UnknownQuarantine",
    "UnknownTicket",
]


@dataclass(frozen=True)
class IntakeResult:
    """What the store did with a ticket at intake. Nothing is stored when `created` is False: its idempotency key
    was known (a repeat push: `ticket_id` is the ticket stored under it), or its partner's number belongs to
    another ticket (`number_taken`: `ticket_id` is that ticket, which the push is a follow-up of)."""

    ticket_id: str
    created: bool
    delivery_ids: tuple[str, ...] = ()
    number_taken: bool = False


@dataclass(frozen=True)
class Relinked:
    """A new ticket as intake stores it once its duplicate candidates are scored: with its links, its JSON and
    outbox, and the link each linked ticket is to show back (`backs`, by that ticket's id; it shows `most` at most)."""

    ticket: Ticket
    ticket_json: str
    outbox: list[OutboxEntry]
    backs: Mapping[str, TicketLink]
    most: int


# What intake makes of a ticket's duplicate candidates (gateway/tickets/intake.py): pure, so a store may call it
# inside its own write (SQLite: on the store thread, in intake's group transaction).
Relink = Callable[[list[LinkCandidate]], Relinked]


@dataclass(frozen=True)
class LinkedIntake:
    """What `Store.intake_linking` did: the intake's result; the ticket as relinked when candidates were found
    (None: none was, the ticket was stored as given); the linked tickets that now show the link back (None when
    other writers kept changing them: the new ticket has its links either way)."""

    result: IntakeResult
    relinked: Relinked | None = None
    shown: tuple[str, ...] | None = ()


@dataclass(frozen=True)
class SourceNumber:
    """A partner's number for a matter: one ticket in the store holds it, whatever versions the partner sends."""

    source_system: str
    source_ticket_no: str


@dataclass(frozen=True)
class DeliveryFilter:
    """Which deliveries to list or replay; None means any."""

    state: DeliveryState | None = None
    destination: str | None = None
    error_class: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    ticket_id: str | None = None
    limit: int = 100


def replayable(state: DeliveryState | None) -> DeliveryState:
    """Which state a replay by filter takes: retrying deliveries when asked for (retry now), else dead letters."""
    return DeliveryState.RETRYING if state is DeliveryState.RETRYING else DeliveryState.DEAD


@dataclass(frozen=True)
class TicketQuery:
    """Which tickets to find; every given field must match exactly (phone by its keyed hash); newest first."""

    adapter_id: str | None = None
    status: str | None = None
    national_registration_no: str | None = None
    source_ticket_no: str | None = None
    respondent_uscc: str | None = None
    respondent_name: str | None = None
    complainant_phone: str | None = None  # in any form a partner writes it; hashed before the lookup
    held: Literal["review"] | None = None  # "review": waiting for an operator's jurisdiction decision
    since: datetime | None = None  # stored at or after (intake time)
    until: datetime | None = None  # stored before
    # The earliest due day of the ticket's running time limits (China time), at or after / before; either one
    # given leaves out tickets with no running limit.
    due_from: date | None = None
    due_before: date | None = None
    order: Literal["newest", "due"] = "newest"  # "due": earliest due day first, then newest
    limit: int = 100


@dataclass(frozen=True)
class LinkQuery:
    """Tickets indexed at intake under any of `marks` (each "complainant|respondent", e.g. "phone:+86…|uscc:…"),
    received (source_received_at) in [since, until]; newest received first. The store keeps each mark only as
    its keyed hash, like the phone."""

    marks: tuple[str, ...]
    since: datetime
    until: datetime
    limit: int = 20


@dataclass(frozen=True)
class OnTimeCount:
    """How the time limits of one kind held by one handling organisation ended in a span of days."""

    handler_org_code: str  # "" when the ticket has no handler
    handler_org_name: str
    kind: str
    met: int
    missed: int


RETURNED_NOTE = "returned:"  # the rule of a 退单's first note on its quarantine record: "returned:<reason code>"


@dataclass(frozen=True)
class QuarantinedPayload:
    quarantine_id: str
    adapter_id: str
    received_at: datetime
    content_type: str
    body: bytes
    errors: tuple[FieldError, ...]  # of the latest time it came
    resolved_ticket_id: str | None = None
    # The same payload (same bytes and content type) from the same adapter, while unresolved, is one record:
    # how many times it came, and when last (received_at is the first time).
    times_seen: int = 1
    last_seen_at: datetime | None = None

    @property
    def returned(self) -> bool:
        """Sent back to its partner (退单: the errors are its notes, `returned:<reason code>` first): closed, as an
        entry resolved by a ticket is; re-mapping it would only send the 退单 again."""
        return any(e.rule.startswith(RETURNED_NOTE) for e in self.errors)


@dataclass(frozen=True)
class PartnerEcho:
    """What the originating partner has heard of its ticket (事事有回音): the newest status a callback carries to
    it, the newest status it actually received (a delivered callback), and since when it is behind."""

    ticket_id: str
    destination: str  # the partner's callback lane
    latest_sequence: int
    latest_status: str  # a Status value
    latest_at: datetime  # when the callback of the newest status was enqueued
    heard_sequence: int | None = None
    heard_status: str | None = None
    heard_at: datetime | None = None  # when the callback of that status was delivered
    behind_since: datetime | None = None  # when the oldest status it has not heard was enqueued; None: caught up
    waiting_delivery_id: str | None = None  # the callback of that status (its last error says why it is late)


@dataclass(frozen=True)
class AuditEntry:
    """One operator action, kept for good: who (in which role) did what, when, to which tickets, and how it went."""

    actor: str
    role: str
    action: str  # e.g. "replay", "replay.dry_run", "quarantine.remap", "config.reload"
    at: datetime
    ticket_ids: tuple[str, ...] = ()
    outcome: str = "ok"
    detail: Mapping[str, object] = field(default_factory=dict)  # JSON-able: ids, filter, counts, errors
    entry_id: str | None = None  # given by the store


@dataclass(frozen=True)
class AuditQuery:
    """Which audit entries to list; None means any; newest first."""

    actor: str | None = None
    action: str | None = None
    ticket_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100


AlertState = Literal["firing", "resolved"]


@dataclass(frozen=True)
class AlertRecord:
    """One alert: a condition (a rule about one subject) from the moment it fired until it resolved.

    `owed`: the channels that have not yet been sent its latest change (held back by their rate limit)."""

    alert_id: str
    key: str  # "<rule>:<subject>": what groups every occurrence of the condition into this one alert
    rule: str
    subject: str
    severity: str
    state: AlertState
    summary: str
    count: int  # how many of the thing now (dead letters, overdue tickets, failed polls…)
    peak: int
    started_at: datetime
    updated_at: datetime
    last_seen_at: datetime  # the last evaluation that found the condition
    resolved_at: datetime | None = None
    notified_count: int | None = None  # the count the last notice told
    notified_at: datetime | None = None
    notices: int = 0  # changes so far (fired, grew, resolved), each owed to the channels that want it
    details: tuple[str, ...] = ()  # a few examples: lane, ticket numbers, the last error
    owed: tuple[str, ...] = ()


# How long per-minute counters are kept: the dashboard shows hours, not days.
COUNTS_RETENTION_S = 3 * 24 * 3600


class StoreLifecycle(ABC):
    """Opening, closing and the health of a store; `async with store: …` opens and closes it."""

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def health(self) -> dict[str, object]:
        """What an operator should know, and never raises: `reachable`, `writable` (the store can take a ticket
        now: /readyz answers 503 when it cannot), `persistent`, `warnings` (why, when either is false)."""

    async def warm_up(self) -> None:  # noqa: B027 (a store that keeps nothing in memory does nothing)
        """Read what the store keeps in this process's memory for intake, before the first ticket needs it: a
        serving gateway calls it once after `open`, before its port opens (a command that stores does not)."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()


class TicketStore(ABC):
    """Tickets and their raw payloads: intake, lookup, optimistic save, search."""

    @abstractmethod
    async def intake(self, ticket: Ticket, raw_body: bytes, raw_content_type: str,
                     outbox: list[OutboxEntry], *, ticket_json: str | None = None,
                     link_marks: Sequence[str] = ()) -> IntakeResult:
        """Store ticket, raw payload and outbox in one step; a known idempotency key returns the existing id.

        The store is the arbiter of a partner's number: the ticket's (source_system, source_ticket_no) is taken
        in the same step, and when another ticket holds it already (another version of the matter, come first or
        at the same moment through another connection or process) nothing is stored and the result names that
        ticket (`number_taken`).

        `ticket_json`: `ticket.model_dump_json()` when the caller has it already (intake forwards the same
        JSON), so it is not made twice. `link_marks`: what later tickets find this one by (`find_link_candidates`),
        indexed in the same step at the ticket's source_received_at."""

    @abstractmethod
    async def get_ticket(self, ticket_id: str) -> Ticket | None: ...

    @abstractmethod
    async def find_ticket_id(self, *, idempotency_key: str | None = None,
                             national_registration_no: str | None = None,
                             source: SourceNumber | None = None) -> str | None:
        """The ticket stored under an idempotency key, the first stored with a national registration number, or
        the one holding a partner's number (one keyed read: no ticket is parsed)."""

    @abstractmethod
    async def save_ticket(self, ticket: Ticket, outbox: list[OutboxEntry], *,
                          expected_revision: int | None = None) -> tuple[str, ...]:
        """Replace a stored ticket and enqueue its outbox in one step; the saved ticket's lifecycle.revision is
        one more than the revision it was read at (`expected_revision`, else the ticket's own).

        With `expected_revision`, the write only happens if the stored ticket's lifecycle.revision still equals
        it (optimistic concurrency: every writer of a ticket reads, changes and saves conditionally); otherwise
        ConcurrentUpdate. A ticket that was never stored raises UnknownTicket.
        """

    @abstractmethod
    async def search_tickets(self, query: TicketQuery) -> list[Ticket]:
        """Tickets matching every given field of the query, newest stored first (or by due day: query.order)."""

    @abstractmethod
    async def count_tickets(self, query: TicketQuery) -> int:
        """How many tickets match every given field of the query (its limit and order aside)."""

    @abstractmethod
    async def on_time_counts(self, first_day: date, last_day: date) -> list[OnTimeCount]:
        """Time limits that ended on a day from first_day to last_day (inclusive, China time), met and missed,
        by handling organisation and kind, as the tickets stand now (a ticket saved again is counted once)."""

    @abstractmethod
    async def get_raw_payload(self, ticket_id: str, key: str | None = None) -> tuple[bytes, str] | None:
        """The payload a ticket was taken from (body, content type); with `key`, the one kept under it by
        `keep_raw_payload` (a later version's)."""

    @abstractmethod
    async def keep_raw_payload(self, ticket_id: str, key: str, body: bytes, content_type: str) -> None:
        """Keep the raw payload of a later version of a stored ticket under `key` (its idempotency key); the same
        key again replaces it (a partner sending the version again). UnknownTicket for a ticket never stored."""

    @abstractmethod
    async def add_links_back(self, links: Mapping[str, TicketLink], *, most: int) -> list[str]:
        """Show each `links[ticket_id]` on that stored ticket (a new ticket's link, seen from the earlier one), in
        one write of the store (SQLite and PostgreSQL: one transaction; Redis: one round trip, each ticket's save
        atomic, a ticket changed meanwhile read again); each changed ticket one revision on. A ticket that shows
        a link to the same ticket already, or `most` links, or is not stored, is left as it is. The ids of the
        tickets changed. ConcurrentUpdate when other writers kept winning."""

    @abstractmethod
    async def find_link_candidates(self, query: LinkQuery) -> list[LinkCandidate]:
        """Tickets stored with any of the query's marks, received in its time range, newest received first, at
        most `limit`, as the link score reads them: an index range read per mark, never a scan."""

    async def intake_unless_candidates(self, ticket: Ticket, raw_body: bytes, raw_content_type: str,
                                       outbox: list[OutboxEntry], query: LinkQuery, *, ticket_json: str | None = None,
                                       link_marks: Sequence[str] = ()) -> IntakeResult | list[LinkCandidate]:
        """`intake`, unless the link look-up (`find_link_candidates(query)`) finds candidates: then nothing is
        stored and they are returned (the caller scores them and calls `intake` with the ticket it decides on). A
        known idempotency key, or a partner's number another ticket holds (`number_taken`), stores nothing either
        way: answered as `intake` answers it, or with the candidates (that ticket among them), after which `intake`
        answers it. Here the look-up and then the intake; a store that can do both in one step (Redis: one script,
        one round trip, key and number checked first; SQLite: one job in intake's group transaction) overrides it."""
        found = await self.find_link_candidates(query)
        if found:
            return found
        return await self.intake(ticket, raw_body, raw_content_type, outbox, ticket_json=ticket_json,
                                 link_marks=link_marks)

    async def intake_linking(self, ticket: Ticket, raw_body: bytes, raw_content_type: str, outbox: list[OutboxEntry],
                             query: LinkQuery, relink: Relink, *, ticket_json: str | None = None,
                             link_marks: Sequence[str] = ()) -> LinkedIntake:
        """Intake with duplicate linking: the ticket stored as given when the look-up finds no candidate; else
        stored as `relink` makes it from the candidates (its links, JSON, outbox), and, when it was stored, each
        linked ticket shows the link back. Here three writes (`intake_unless_candidates`, `intake`,
        `add_links_back`); SQLite overrides it with one job in intake's group transaction (one commit, where a
        duplicate cost three acknowledged commits)."""
        first = await self.intake_unless_candidates(ticket, raw_body, raw_content_type, outbox, query,
                                                    ticket_json=ticket_json, link_marks=link_marks)
        if isinstance(first, IntakeResult):
            return LinkedIntake(first)
        relinked = relink(first)
        result = await self.intake(relinked.ticket, raw_body, raw_content_type, relinked.outbox,
                                   ticket_json=relinked.ticket_json, link_marks=link_marks)
        if not result.created or not relinked.backs:
            return LinkedIntake(result, relinked)
        try:
            shown = await self.add_links_back(relinked.backs, most=relinked.most)
        except ConcurrentUpdate:
            return LinkedIntake(result, relinked, None)
        return LinkedIntake(result, relinked, tuple(shown))


class QuarantineStore(ABC):
    """Payloads that could not be mapped, kept with their errors until an operator resolves them."""

    @abstractmethod
    async def quarantine(self, adapter_id: str, body: bytes, content_type: str,
                         errors: list[FieldError]) -> str:
        """Keep a payload that did not map; its id. The same payload (bytes and content type) from the same adapter
        while its record is unresolved counts on that record (times seen, last seen, latest errors) and returns
        its id."""

    @abstractmethod
    async def get_quarantined(self, quarantine_id: str) -> QuarantinedPayload | None: ...

    @abstractmethod
    async def list_quarantined(self, adapter_id: str | None = None, limit: int = 100) -> list[QuarantinedPayload]: ...

    @abstractmethod
    async def resolve_quarantined(self, quarantine_id: str, ticket_id: str) -> None:
        """Mark the payload resolved by this ticket; UnknownQuarantine for an id never stored."""

    @abstractmethod
    async def return_quarantined(self, quarantine_id: str, notes: list[FieldError]) -> None:
        """The payload, re-mapped, was sent back to its partner (退单): its errors become the 退单's notes (the
        reason, and the rule with its evidence), so that it reads as a pushed 退单's record does; UnknownQuarantine
        for an id never stored."""


class EchoStore(ABC):
    """The sender's echo of each ticket, kept by the lane writes themselves: enqueuing a status callback (an outbox
    entry that `reports` a status) moves the newest status, delivering one moves what the partner heard."""

    @abstractmethod
    async def get_echo(self, ticket_id: str) -> PartnerEcho | None:
        """None when no status callback was ever enqueued for the ticket."""

    @abstractmethod
    async def list_behind(self, behind_before: datetime, limit: int = 100) -> list[PartnerEcho]:
        """Tickets whose partner has not heard a status enqueued before `behind_before`, longest behind first."""

    @abstractmethod
    async def count_behind(self, behind_before: datetime) -> int:
        """How many tickets list_behind(behind_before) would list without a limit."""


class LaneStore(ABC):
    """Delivery lanes: deliveries enqueued, leased, settled, released, reaped, listed, replayed, compacted."""

    @abstractmethod
    async def enqueue(self, ticket_id: str, idempotency_key: str, entries: list[OutboxEntry]) -> tuple[str, ...]: ...

    @abstractmethod
    async def claim(self, destination: str, worker_id: str, lease_seconds: float,
                    limit: int = 1) -> list[ClaimedDelivery]:
        """Lease due deliveries of one lane: priority first, then fresh before retries, then oldest."""

    # The three settle_* record the attempt (its number set to claim.attempts + 1, its response body
    # cut to 16 KB of UTF-8) and raise LeaseLost when the claim's lease token is no longer the holder.
    @abstractmethod
    async def settle_delivered(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None: ...

    @abstractmethod
    async def settle_retry(self, claim: ClaimedDelivery, attempt: AttemptReceipt, due_at: datetime) -> None: ...

    @abstractmethod
    async def settle_dead(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None: ...

    @abstractmethod
    async def release(self, claim: ClaimedDelivery) -> bool:
        """Give a claim back unsent, before its lease runs out: it is due again at once, in the state it was
        claimed from, and no attempt is counted. False when its lease is no longer held (nothing changes)."""

    @abstractmethod
    async def reap_expired_leases(self, now: datetime) -> int:
        """Return deliveries whose lease ran out to their lane; how many."""

    @abstractmethod
    async def get_delivery(self, delivery_id: str) -> DeliveryReceipt | None: ...

    @abstractmethod
    async def list_deliveries(self, flt: DeliveryFilter) -> list[DeliveryReceipt]: ...

    @abstractmethod
    async def list_attempts(self, delivery_id: str) -> list[AttemptReceipt]: ...

    @abstractmethod
    async def replay(self, flt: DeliveryFilter | None = None, delivery_ids: list[str] | None = None,
                     dry_run: bool = False) -> list[str]:
        """Put dead deliveries back on their lanes and make retrying ones due now (attempt history kept, the retry
        budget counted again from now); the ids replayed or to be. By id, a delivery in any other state is left
        alone; by filter, `flt.state` RETRYING takes retrying deliveries, anything else dead letters."""

    @abstractmethod
    async def compact_delivered(self, created_before: datetime, limit: int = 500) -> int:
        """Free the space of delivered deliveries created before `created_before`: their body (a copy of what
        was sent) and their attempts' response bodies. Each keeps the rest: destination, state, idempotency key,
        times, and every attempt's number, time, status and outcome. How many this call compacted, at most
        `limit`; call again until it returns 0. Goes by creation time: a delivery delivered only after a
        compaction passed its creation time may be left whole (Redis)."""

    @abstractmethod
    async def watch_lanes(self, wake: Callable[[str | None], None]) -> None:
        """From now until the store closes, call `wake(lane)` on the event loop when work becomes due on a lane
        through another connection or process, and `wake(None)` when some may have been missed (after a
        reconnection); returns at once. A store that cannot tell does nothing, and lanes find new work by their
        idle polling (SQLite, Redis)."""

    @abstractmethod
    async def lane_stats(self) -> dict[str, dict[str, float]]:
        """Per destination: counts by state and the age in seconds of the oldest undelivered.

        Keys: one per DeliveryState value, and "oldest_waiting_age_s" (pending, retrying or in flight;
        0.0 when the lane is empty).
        """


class OpsLedger(ABC):
    """What operations keep and read: the audit log, per-minute counters, intake totals per adapter."""

    @abstractmethod
    async def append_audit(self, entry: AuditEntry) -> str:
        """Keep one audit entry (never trimmed); its id."""

    @abstractmethod
    async def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        """Audit entries matching every given field of the query, newest first."""

    @abstractmethod
    async def add_counts(self, counts: Mapping[datetime, Mapping[str, int]]) -> None:
        """Add to per-minute counters (minute start, UTC) by series name; kept for COUNTS_RETENTION_S."""

    @abstractmethod
    async def read_counts(self, since: datetime, until: datetime | None = None) -> dict[datetime, dict[str, int]]:
        """The per-minute counters of minutes starting in [since, until), by minute start (UTC)."""

    @abstractmethod
    async def intake_stats(self, adapter_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Per adapter: "tickets" stored, "quarantined" payloads ever, "quarantine_open" waiting for an operator
        (neither resolved by a ticket nor sent back), "returned" sent back to the partner as 退单."""


class AlertLedger(ABC):
    """Alerts as the alert monitor keeps them: one record per alert, saved whole at every change."""

    @abstractmethod
    async def save_alert(self, alert: AlertRecord) -> None:
        """Keep the alert, replacing the record of the same alert_id."""

    @abstractmethod
    async def list_alerts(self, *, firing_only: bool = False, limit: int = 100) -> list[AlertRecord]:
        """Alerts (only those firing, or all), most recently updated first."""


class Coordination(ABC):
    """What processes sharing one store agree on: poll cursors, named locks, nonces seen."""

    @abstractmethod
    async def get_cursor(self, adapter_id: str) -> str | None: ...

    @abstractmethod
    async def set_cursor(self, adapter_id: str, cursor: str) -> None: ...

    @abstractmethod
    async def try_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        """Take or renew a named lock held by `owner` (pollers: one per adapter across processes)."""

    @abstractmethod
    async def release_lock(self, name: str, owner: str) -> None: ...

    @abstractmethod
    async def lock_holder(self, name: str) -> str | None:
        """The owner of the named lock while it is unexpired, else None."""

    @abstractmethod
    async def take_over_lock(self, name: str, stale_owner: str, owner: str, ttl_seconds: float) -> bool:
        """Give the lock to `owner` if `stale_owner` (known dead: a killed process) still holds it, in one atomic
        step; False if anyone else holds it by now."""

    @abstractmethod
    async def remember_nonce(self, scope: str, nonce: str, ttl_seconds: float) -> bool:
        """True the first time a nonce is seen in its scope within ttl; False for a replay."""


class Store(StoreLifecycle, TicketStore, QuarantineStore, LaneStore, EchoStore, OpsLedger, AlertLedger, Coordination,
            ABC):
    """Durable state of the gateway: every role in one backend. Every method is atomic on its own."""
