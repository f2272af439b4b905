"""Partner follow-ups of a known ticket: a new version or supplement updates it, an urge (催办) is counted, a withdrawal
(撤诉/撤回) is recorded; each goes to the national platform as a follow-up of the same registration, never a second."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from contracts.base import CHINA_STANDARD_TIME
from contracts.delivery import DeliveryKind, OutboxEntry
from contracts.followups import (
    URGES_KEPT,
    FollowUpNotice,
    TicketVersion,
    Urge,
    Withdrawal,
    newer,
    next_version,
)
from contracts.national_followups import NationalFollowUp, NationalOperation, registration_key
from contracts.ticket import CONTENT_MAX, Ticket, idempotency_key_of
from gateway.store import TicketQuery, TicketStore
from gateway.tickets.updates import Change, TicketChange, update_ticket

log = logging.getLogger(__name__)

# The groups of a ticket a new version replaces (its source facts come with them); the gateway's own decisions —
# routing, deadlines, lifecycle, the national number — stay.
REPLACED = ("classification", "registration", "complainant", "respondent", "subject", "problem", "occurrence",
            "attachments")
# How many stored tickets with one source number are looked at (a partner reusing numbers is a partner's bug).
_SAME_NUMBER_LIMIT = 20

FollowUpSaid = Literal["new_version", "supplement", "urge", "withdrawal"]
Verdict = Literal["updated", "repeat"]

_KIND: dict[NationalOperation, DeliveryKind] = {
    "update": DeliveryKind.UPDATE, "urge": DeliveryKind.URGE, "withdraw": DeliveryKind.WITHDRAW}


@dataclass(frozen=True)
class FollowUpResult:
    """What became of a follow-up: the ticket it concerns, and whether it changed it or repeated what it knew."""

    verdict: Verdict
    ticket_id: str
    said: FollowUpSaid


def forwarded(ticket: Ticket) -> bool:
    """Whether the ticket went to the national platform (not held for review, where nothing is sent yet)."""
    decision = ticket.routing.jurisdiction
    return decision is None or decision.outcome == "accept"


async def known_ticket(store: TicketStore, source_system: str, source_ticket_no: str) -> Ticket | None:
    """The stored ticket a partner's number names: the first stored of that source system and number."""
    found = await store.search_tickets(TicketQuery(source_ticket_no=source_ticket_no, limit=_SAME_NUMBER_LIMIT))
    same = [t for t in found if t.source.source_system == source_system]
    return same[-1] if same else None  # newest first: the last is the first stored


def _now() -> datetime:
    return datetime.now(CHINA_STANDARD_TIME)


def _versions(ticket: Ticket) -> list[TicketVersion]:
    """The ticket's versions so far, the first one recorded from the ticket itself when it never had another."""
    if ticket.sender_updates.versions:
        return list(ticket.sender_updates.versions)
    assert ticket.idempotency_key is not None
    return [TicketVersion(version=ticket.source.source_version, kind="original",
                          received_at=ticket.source.source_received_at, idempotency_key=ticket.idempotency_key)]


def _with_updates(ticket: Ticket, **changes: object) -> Ticket:
    return ticket.model_copy(update={"sender_updates": ticket.sender_updates.model_copy(update=changes)})


def _changed(before: Ticket, after: Ticket) -> list[str]:
    return [group for group in REPLACED if getattr(before, group) != getattr(after, group)]


def revised(stored: Ticket, new: Ticket) -> Ticket:
    """The stored ticket carrying a new version's facts: the partner's fields replaced, the gateway's decisions and
    the record of the earlier versions kept. The respondent keeps the credit flags intake looked up."""
    respondent = new.respondent
    if respondent.uscc == stored.respondent.uscc and not respondent.credit_flags:
        respondent = respondent.model_copy(update={"credit_flags": stored.respondent.credit_flags})
    source = new.source.model_copy(update={"adapter_id": stored.source.adapter_id})
    update: dict[str, object] = {group: getattr(new, group) for group in REPLACED}
    update.update(respondent=respondent, source=source,
                  idempotency_key=idempotency_key_of(source.source_system, source.source_ticket_no,
                                                     source.source_version))
    return stored.model_copy(update=update)


def supplemented(stored: Ticket, notice: FollowUpNotice, version: str) -> Ticket:
    """The stored ticket with a supplement's material added to its content (cut to the national limit; the whole
    text stays on the version's record), under the supplement's version."""
    assert notice.text is not None  # the contract requires it of a supplement
    stamp = notice.at.astimezone(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M")
    content = f"{stored.registration.content}\n【补充材料 {stamp}】{notice.text}"[:CONTENT_MAX]
    source = stored.source.model_copy(update={"source_version": version})
    return stored.model_copy(update={
        "registration": stored.registration.model_copy(update={"content": content}),
        "source": source,
        "idempotency_key": idempotency_key_of(source.source_system, source.source_ticket_no, version)})


class FollowUps:
    """Applies partner follow-ups to stored tickets through the update seam, with the national follow-up in the
    same step. Pure decisions over the ticket read; the store only through `update_ticket`."""

    def __init__(self, store: TicketStore, national_destination: str) -> None:
        self.store = store
        self.national_destination = national_destination

    async def new_version(self, stored: Ticket, new: Ticket, *, raw_body: bytes, content_type: str) -> FollowUpResult:
        """A later version of a stored ticket (same source number): the ticket updated and the national platform
        told; an equal or older version is a repeat."""
        assert new.idempotency_key is not None
        if newer(new.source.source_version, stored.source.source_version):
            # Kept before the ticket names it: should the save fail, the partner sends again and it is replaced.
            await self.store.keep_raw_payload(stored.ticket_id, new.idempotency_key, raw_body, content_type)

        def change(ticket: Ticket) -> tuple[Verdict, TicketChange | None]:
            if not newer(new.source.source_version, ticket.source.source_version):
                return "repeat", None
            updated = revised(ticket, new)
            assert updated.idempotency_key is not None
            record = TicketVersion(version=new.source.source_version, kind="new_version", received_at=_now(),
                                   idempotency_key=updated.idempotency_key, changed=_changed(ticket, updated))
            updated = _with_updates(updated, versions=[*_versions(ticket), record])
            return "updated", self._change(ticket, updated, "update", record.idempotency_key, at=record.received_at,
                                           version=record.version)

        return await self._apply(stored, change, "new_version")

    async def notice(self, stored: Ticket, notice: FollowUpNotice, *, raw_body: bytes,
                     content_type: str) -> FollowUpResult:
        """A supplement, urge or withdrawal of a stored ticket."""
        if notice.kind == "supplement":
            version = notice.version or next_version(stored.source.source_version)
            key = idempotency_key_of(stored.source.source_system, stored.source.source_ticket_no, version)
            if newer(version, stored.source.source_version) and not _said_before(stored, notice):
                await self.store.keep_raw_payload(stored.ticket_id, key, raw_body, content_type)
            return await self._apply(stored, self._supplement(notice), "supplement")
        if notice.kind == "urge":
            return await self._apply(stored, self._urge(notice), "urge")
        return await self._apply(stored, self._withdrawal(notice), "withdrawal")

    def _supplement(self, notice: FollowUpNotice) -> Change[Verdict]:
        def change(ticket: Ticket) -> tuple[Verdict, TicketChange | None]:
            version = notice.version or next_version(ticket.source.source_version)
            if _said_before(ticket, notice) or not newer(version, ticket.source.source_version):
                return "repeat", None
            updated = supplemented(ticket, notice, version)
            assert updated.idempotency_key is not None
            record = TicketVersion(version=version, kind="supplement", received_at=_now(),
                                   idempotency_key=updated.idempotency_key, changed=["registration"], text=notice.text,
                                   reference=notice.reference, notice_key=notice.key)
            updated = _with_updates(updated, versions=[*_versions(ticket), record])
            return "updated", self._change(ticket, updated, "update", record.idempotency_key, at=notice.at,
                                           version=version, text=notice.text)

        return change

    def _urge(self, notice: FollowUpNotice) -> Change[Verdict]:
        def change(ticket: Ticket) -> tuple[Verdict, TicketChange | None]:
            if any(u.key == notice.key for u in ticket.sender_updates.urges):
                return "repeat", None
            urge = Urge(key=notice.key, at=notice.at, received_at=_now(), text=notice.text, reference=notice.reference,
                        requested_by=notice.requested_by)
            urges = [*ticket.sender_updates.urges, urge][-URGES_KEPT:]
            updated = _with_updates(ticket, urges=urges, urge_count=ticket.sender_updates.urge_count + 1)
            return "updated", self._change(ticket, updated, "urge", notice.key, at=notice.at, text=notice.text)

        return change

    def _withdrawal(self, notice: FollowUpNotice) -> Change[Verdict]:
        def change(ticket: Ticket) -> tuple[Verdict, TicketChange | None]:
            current = ticket.sender_updates.withdrawal
            if current is not None and (current.key == notice.key or current.state != "refused"):
                return "repeat", None  # asked once is enough, until the platform refused it
            withdrawal = Withdrawal(key=notice.key, at=notice.at, received_at=_now(), text=notice.text,
                                    reference=notice.reference, requested_by=notice.requested_by)
            updated = _with_updates(ticket, withdrawal=withdrawal)
            return "updated", self._change(ticket, updated, "withdraw", notice.key, at=notice.at, text=notice.text)

        return change

    def _change(self, read: Ticket, updated: Ticket, operation: NationalOperation, key: str, *, at: datetime,
                version: str | None = None, text: str | None = None) -> TicketChange:
        """The updated ticket, and the follow-up to the national platform when the ticket went there."""
        if not forwarded(read):
            return TicketChange(updated)
        body = NationalFollowUp(operation=operation, registration_key=registration_key(read),
                                national_registration_no=read.national_registration_no, ticket_id=read.ticket_id,
                                key=key, version=version, ticket=updated if operation == "update" else None,
                                at=at, text=text)
        entry = OutboxEntry(destination=self.national_destination, kind=_KIND[operation],
                            body=body.model_dump_json(exclude_none=True).encode("utf-8"),
                            idempotency_key=f"{registration_key(read)}:{operation}:{key}")
        return TicketChange(updated, [entry])

    async def _apply(self, stored: Ticket, change: Change[Verdict], said: FollowUpSaid) -> FollowUpResult:
        update = await update_ticket(self.store, stored.ticket_id, change)
        verdict: Verdict = "repeat" if update is None else update.verdict
        log.info("partner follow-up " + ("applied" if verdict == "updated" else "repeated"), extra={
            "ticket_id": stored.ticket_id, "adapter_id": stored.source.adapter_id, "follow_up": said})
        return FollowUpResult(verdict, stored.ticket_id, said)


def _said_before(ticket: Ticket, notice: FollowUpNotice) -> bool:
    return any(v.notice_key == notice.key for v in ticket.sender_updates.versions)
