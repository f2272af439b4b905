"""Applying a status event to a ticket: the state machine, duplicates and events that arrive out of order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from contracts.codesets import Status
from contracts.status import TRANSITIONS, AppliedEvent, RejectedEvent, StatusEvent
from contracts.ticket import Ticket


class EventOutcome(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"  # this sequence was applied before: acknowledge, change nothing
    STALE = "stale"  # older than what the ticket already shows: acknowledge, change nothing
    EARLY = "early"  # an earlier event is missing and this one does not follow the current status: retry later
    ILLEGAL = "illegal"  # the transition is not allowed: reject


@dataclass(frozen=True)
class EventDecision:
    outcome: EventOutcome
    ticket: Ticket  # the changed ticket when applied, otherwise the one given
    reason: str = ""  # why it was not applied, in English (logs, the ticket's record)
    reason_zh: str = ""  # the same in Chinese, for the platform that sent the event

    @property
    def changed(self) -> bool:
        return self.outcome is EventOutcome.APPLIED


def apply_status_event(ticket: Ticket, event: StatusEvent) -> EventDecision:
    """Decide what one event does to a ticket. Pure: the caller stores the result.

    Sequences are per ticket and increase by one with each event the platform sends. An event at or
    below the last applied sequence is a repeat or arrived late, and is acknowledged without effect.
    An event with a gap before it is applied when its transition is legal from where the ticket
    stands (the missing event changed nothing we need); otherwise it waits for the missing one.
    """
    lifecycle = ticket.lifecycle
    if event.sequence <= lifecycle.last_sequence:
        seen = any(e.event_id == event.event_id or e.sequence == event.sequence for e in lifecycle.events)
        outcome = EventOutcome.DUPLICATE if seen else EventOutcome.STALE
        return EventDecision(outcome, ticket, f"sequence {event.sequence} ≤ last applied {lifecycle.last_sequence}",
                             f"序号 {event.sequence} 不大于已应用的序号 {lifecycle.last_sequence}")
    current = lifecycle.status
    if event.status not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current]))
        reason = f"status cannot change from {current} to {event.status}; allowed next: {allowed or 'none (terminal)'}"
        reason_zh = f"状态不能从 {current} 变为 {event.status}；可变为：{allowed or '无（终态）'}"
        gap = event.sequence > lifecycle.last_sequence + 1
        return EventDecision(EventOutcome.EARLY if gap else EventOutcome.ILLEGAL, ticket, reason, reason_zh)
    applied = AppliedEvent(at=event.at, from_status=current, to_status=event.status, sequence=event.sequence,
                           event_id=event.event_id, org=event.org, actor=event.actor, opinion=event.opinion,
                           extends=event.extends)
    update: dict[str, object] = {
        "status": event.status,
        "last_sequence": event.sequence,
        "events": [*lifecycle.events, applied],
    }
    if event.status is Status.NOT_ACCEPTED:
        update["not_accepted_reason"] = event.not_accepted_reason
    if event.result is not None:
        update["result"] = event.result
    if event.follow_up is not None:
        update["follow_up"] = event.follow_up
    changed = ticket.model_copy(update={"lifecycle": lifecycle.model_copy(update=update)})
    if event.national_registration_no and not ticket.national_registration_no:
        changed = changed.model_copy(update={"national_registration_no": event.national_registration_no})
    return EventDecision(EventOutcome.APPLIED, changed)


def record_rejection(ticket: Ticket, event: StatusEvent, reason: str, received_at: datetime) -> Ticket:
    """The ticket with an illegal event kept on its record; its status is unchanged."""
    rejected = RejectedEvent(received_at=received_at, event_id=event.event_id, sequence=event.sequence,
                             status=event.status, reason=reason[:500])
    lifecycle = ticket.lifecycle.model_copy(update={"rejected_events": [*ticket.lifecycle.rejected_events, rejected]})
    return ticket.model_copy(update={"lifecycle": lifecycle})
