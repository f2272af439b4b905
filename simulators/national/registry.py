"""The simulator's memory: registered tickets, idempotency keys, status events and counters (optionally a file)."""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, Field

from contracts.base import CHINA_STANDARD_TIME
from contracts.codesets import Status
from contracts.national_followups import NationalFollowUpAnswer
from contracts.status import StatusEvent
from contracts.ticket import Ticket

log = logging.getLogger(__name__)

NATIONAL_PREFIX = "12315"
DeliveryState = Literal["held", "pending", "delivered", "failed", "not_sent"]


def now_cst() -> datetime:
    return datetime.now(CHINA_STANDARD_TIME)


class RegisteredTicket(BaseModel):
    """A ticket the platform accepted, under its national registration number."""

    national_registration_no: str
    idempotency_key: str
    registered_at: datetime
    ticket: Ticket
    status: Status = Status.RECEIVED
    status_sequence: int = 0  # sequence 0 is the registration itself; events count from 1
    last_sequence: int = 0
    submissions: Annotated[int, Field(ge=1)] = 1
    version: str = "1"  # the source version the platform holds (updates move it on)
    versions: list[str] = Field(default_factory=list)  # the versions updates brought, in order
    urge_count: Annotated[int, Field(ge=0)] = 0
    follow_up_answers: dict[str, NationalFollowUpAnswer] = Field(default_factory=dict)  # by follow-up key

    def summary(self, duplicate: bool | None = None) -> dict[str, object]:
        body: dict[str, object] = {
            "national_registration_no": self.national_registration_no,
            "ticket_id": self.ticket.ticket_id,
            "idempotency_key": self.idempotency_key,
            "business_type": self.ticket.classification.business_type.value,
            "status": self.status.value,
            "registered_at": self.registered_at.isoformat(),
            "last_sequence": self.last_sequence,
            "submissions": self.submissions,
            "version": self.version,
            "versions": self.versions,
            "urge_count": self.urge_count,
        }
        if duplicate is not None:
            body["duplicate"] = duplicate
        return body


class AttemptRecord(BaseModel):
    """One POST of a status event to the gateway."""

    at: datetime
    duration_ms: float
    status_code: int | None = None
    error: str | None = None


class EventRecord(BaseModel):
    """A status event the platform issued and what became of sending it."""

    webhook_id: str
    event: StatusEvent
    state: DeliveryState = "pending"
    sends: int = 0  # 1 + the number of deliberate re-sends
    transition_allowed: bool = True
    attempts: list[AttemptRecord] = Field(default_factory=list)
    delivered_at: datetime | None = None


class Stats(BaseModel):
    """Counters an integrator or a test reads back from GET /sim/stats."""

    submissions: int = 0  # authenticated POST /api/v1/tickets that reached the platform
    accepted: int = 0  # first submissions of a key (201)
    duplicates: int = 0  # repeats of a known key (200, same number)
    rejected: int = 0  # invalid tickets (422)
    unauthorized: int = 0  # national API calls without valid credentials (401)
    faults: dict[str, int] = Field(default_factory=dict)
    events_created: int = 0
    events_delivered: int = 0
    events_failed: int = 0
    event_attempts: int = 0
    updates: int = 0  # follow-ups: new versions taken
    urges: int = 0
    withdrawals: int = 0  # accepted (a WITHDRAWN event follows)
    withdrawals_refused: int = 0
    follow_up_repeats: int = 0  # a follow-up sent again (same key): the first answer, nothing changed


class NationalState(BaseModel):
    """All the simulator remembers; serialised whole to the state file."""

    tickets: dict[str, RegisteredTicket] = Field(default_factory=dict)
    keys: dict[str, str] = Field(default_factory=dict)  # idempotency key -> national registration number
    day_counters: dict[str, int] = Field(default_factory=dict)  # region+yyyymmdd -> last sequence
    events: dict[str, EventRecord] = Field(default_factory=dict)  # event_id -> record, in issue order
    stats: Stats = Field(default_factory=Stats)

    def next_registration_no(self, region_code: str, on: datetime) -> str:
        """`12315` + region (6) + yyyymmdd + a 6-digit sequence per region and day."""
        day = on.astimezone(CHINA_STANDARD_TIME).strftime("%Y%m%d")
        counter_key = f"{region_code}{day}"
        seq = self.day_counters.get(counter_key, 0) + 1
        if seq > 999_999:
            raise OverflowError(f"more than 999999 registrations for region {region_code} on {day}")
        self.day_counters[counter_key] = seq
        return f"{NATIONAL_PREFIX}{region_code}{day}{seq:06d}"

    def clear(self) -> None:
        """Forget every ticket, event and counter (POST /sim/reset)."""
        fresh = NationalState()
        self.tickets, self.keys, self.day_counters = fresh.tickets, fresh.keys, fresh.day_counters
        self.events, self.stats = fresh.events, fresh.stats

    def count_fault(self, kind: str) -> None:
        self.stats.faults[kind] = self.stats.faults.get(kind, 0) + 1

    def summary_stats(self) -> dict[str, object]:
        body: dict[str, object] = self.stats.model_dump(mode="json")
        body["unique_idempotency_keys"] = len(self.keys)
        body["tickets"] = len(self.tickets)
        body["events_pending"] = sum(1 for r in self.events.values() if r.state == "pending")
        return body


class StateFile:
    """Saves and loads the state as one JSON file, replaced atomically so a crash leaves the old one whole."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    def load(self) -> NationalState:
        if self.path is None or not self.path.exists():
            return NationalState()
        state = NationalState.model_validate_json(self.path.read_bytes())
        log.info("national simulator state loaded", extra={"path": str(self.path), "tickets": len(state.tickets)})
        return state

    def save(self, state: NationalState) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.write_text(state.model_dump_json(), encoding="utf-8")
        os.replace(tmp, self.path)
