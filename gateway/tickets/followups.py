"""Partner follow-ups of a known ticket: a new version or supplement updates it, an urge (催办) is counted, a withdrawal
(撤诉/撤回) is recorded; each goes to the national platform as a follow-up of the same registration, never a second."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

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
from contracts.ticket import CONTENT_MAX, JurisdictionDecision, RoutingRevision, Ticket, idempotency_key_of
from gateway.store import SourceNumber, TicketStore
from gateway.tickets.updates import Change, TicketChange, update_ticket

log = logging.getLogger(__name__)

# The groups of a ticket a new version replaces (its source facts come with them); the gateway's own decisions —
# routing, deadlines, lifecycle, the national number — stay.
REPLACED = ("classification", "registration", "complainant", "respondent", "subject", "problem", "occurrence",
            "attachments")

FollowUpSaid = Literal["new_version", "stale_version", "supplement", "urge", "withdrawal"]
Verdict = Literal["updated", "repeat"]

_KIND: dict[NationalOperation, DeliveryKind] = {
    "update": DeliveryKind.UPDATE, "urge": DeliveryKind.URGE, "withdraw": DeliveryKind.WITHDRAW}


@dataclass(frozen=True)
class FollowUpResult:
    """What became of a follow-up: the ticket it concerns, and whether it changed it or repeated what it knew."""

    verdict: Verdict
    ticket_id: str
    said: FollowUpSaid


class TicketDecisions(Protocol):
    """The business layer's decisions a new version of a ticket is put through again (the intake service's)."""

    def screen(self, ticket: Ticket) -> JurisdictionDecision | None: ...

    def reassign(self, ticket: Ticket) -> Ticket: ...  # the handler and the deadlines, from the ticket's facts


def forwarded(ticket: Ticket) -> bool:
    """Whether the ticket went to the national platform (not held for review at intake, where nothing is sent yet;
    a ticket whose later version is held was forwarded before it)."""
    decision = ticket.routing.jurisdiction
    return decision is None or decision.outcome == "accept" or bool(ticket.sender_updates.held_versions())


async def known_ticket(store: TicketStore, source_system: str, source_ticket_no: str) -> Ticket | None:
    """The stored ticket a partner's number names: the one holding it in the store (the first stored with it)."""
    ticket_id = await store.find_ticket_id(source=SourceNumber(source_system, source_ticket_no))
    return None if ticket_id is None else await store.get_ticket(ticket_id)


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
    # The matter was received when its first version was: its limits count from then (each version's own time of
    # receipt is on its TicketVersion).
    source = new.source.model_copy(update={"adapter_id": stored.source.adapter_id,
                                           "source_received_at": stored.source.source_received_at})
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

    def __init__(self, store: TicketStore, national_destination: str, decisions: TicketDecisions) -> None:
        self.store = store
        self.national_destination = national_destination
        self.decisions = decisions

    async def new_version(self, stored: Ticket, new: Ticket, *, raw_body: bytes, content_type: str) -> FollowUpResult:
        """A later version of a stored ticket (same source number): the ticket updated, screened, its handler and
        deadlines worked out again, and the national platform told — unless the version now screens as another
        authority's matter (or undecided): then its update waits for an operator. An equal version is a repeat;
        an older one come late is a repeat too (`stale_version`), its raw payload kept."""
        assert new.idempotency_key is not None
        version = new.source.source_version
        if version != stored.source.source_version and not _knows_version(stored, version):
            # Kept before the ticket names it: should the save fail, the partner sends again and it is replaced.
            await self.store.keep_raw_payload(stored.ticket_id, new.idempotency_key, raw_body, content_type)

        def change(ticket: Ticket) -> tuple[Verdict, TicketChange | None]:
            if not newer(version, ticket.source.source_version):
                if version == ticket.source.source_version or _knows_version(ticket, version):
                    return "repeat", None
                assert new.idempotency_key is not None
                late = TicketVersion(version=version, kind="stale", received_at=_now(),
                                     idempotency_key=new.idempotency_key)
                return "repeat", TicketChange(_with_updates(ticket, versions=[*_versions(ticket), late]))
            updated = revised(ticket, new)
            assert updated.idempotency_key is not None
            record = TicketVersion(version=version, kind="new_version", received_at=_now(),
                                   idempotency_key=updated.idempotency_key, changed=_changed(ticket, updated))
            return "updated", self._versioned(ticket, updated, record, at=record.received_at)

        done = await self._apply(stored, change, "new_version")
        if done.verdict == "repeat" and newer(stored.source.source_version, version):
            return FollowUpResult("repeat", done.ticket_id, "stale_version")
        return done

    def _versioned(self, read: Ticket, updated: Ticket, record: TicketVersion, *, at: datetime,
                   text: str | None = None) -> TicketChange:
        """A new version or supplement taken like a ticket: its handler and deadlines worked out again, the
        jurisdiction screen run on it, and its update sent — or, when it screens as not ours, held for review."""
        updated = self._reconsidered(read, updated, record.version)
        screen = self.decisions.screen(updated)
        held = forwarded(read) and screen is not None and screen.outcome != "accept"
        record = record.model_copy(update={"screened": None if screen is None else screen.outcome, "held": held})
        updated = _screened(_with_updates(updated, versions=[*_versions(read), record]), screen, held, forwarded(read))
        if held:
            log.warning("a new version screens as not ours: its update waits for review", extra={
                "ticket_id": read.ticket_id, "adapter_id": read.source.adapter_id, "version": record.version,
                "rule": screen.rule_id if screen else None})
            return TicketChange(updated)
        return self.national_change(read, updated, "update", record.idempotency_key, at=at, version=record.version,
                                    text=text)

    def _reconsidered(self, before: Ticket, updated: Ticket, version: str) -> Ticket:
        """The handler and deadlines worked out again for the new facts (from the rule set in force at receipt);
        what they were before is kept on the routing when they changed."""
        decided = self.decisions.reassign(updated)
        was, now = before.routing, decided.routing
        if (was.handler_org_code, was.handler_level, was.deadlines) == (now.handler_org_code, now.handler_level,
                                                                          now.deadlines):
            return decided
        revision = RoutingRevision(version=version, at=_now(), handler_org_code=was.handler_org_code,
                                   handler_org_name=was.handler_org_name, handler_level=was.handler_level,
                                   deadlines=was.deadlines)
        routing = now.model_copy(update={"revisions": [*now.revisions, revision][-50:]})
        return decided.model_copy(update={"routing": routing})

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
            return "updated", self._versioned(ticket, updated, record, at=notice.at, text=notice.text)

        return change

    def _urge(self, notice: FollowUpNotice) -> Change[Verdict]:
        def change(ticket: Ticket) -> tuple[Verdict, TicketChange | None]:
            if any(u.key == notice.key for u in ticket.sender_updates.urges):
                return "repeat", None
            urge = Urge(key=notice.key, at=notice.at, received_at=_now(), text=notice.text, reference=notice.reference,
                        requested_by=notice.requested_by)
            urges = [*ticket.sender_updates.urges, urge][-URGES_KEPT:]
            updated = _with_updates(ticket, urges=urges, urge_count=ticket.sender_updates.urge_count + 1)
            return "updated", self.national_change(ticket, updated, "urge", notice.key, at=notice.at, text=notice.text)

        return change

    def _withdrawal(self, notice: FollowUpNotice) -> Change[Verdict]:
        def change(ticket: Ticket) -> tuple[Verdict, TicketChange | None]:
            current = ticket.sender_updates.withdrawal
            if current is not None and (current.key == notice.key or current.state != "refused"):
                return "repeat", None  # asked once is enough, until the platform refused it
            withdrawal = Withdrawal(key=notice.key, at=notice.at, received_at=_now(), text=notice.text,
                                    reference=notice.reference, requested_by=notice.requested_by)
            updated = _with_updates(ticket, withdrawal=withdrawal)
            return "updated", self.national_change(ticket, updated, "withdraw", notice.key, at=notice.at,
                                                   text=notice.text)

        return change

    def national_change(self, read: Ticket, updated: Ticket, operation: NationalOperation, key: str, *,
                        at: datetime, version: str | None = None, text: str | None = None) -> TicketChange:
        """The updated ticket, and the follow-up to the national platform when the ticket went there (also an
        operator's settlement of a held version: its update, or the withdrawal of a matter no longer ours)."""
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


def _knows_version(ticket: Ticket, version: str) -> bool:
    return any(v.version == version for v in ticket.sender_updates.versions)


def _screened(ticket: Ticket, screen: JurisdictionDecision | None, held: bool, was_forwarded: bool) -> Ticket:
    """The ticket with a new version's screen recorded: a held version puts the ticket to review (its decision
    says why); a version that screens as ours releases the ones held before it (its update carries them)."""
    if screen is None or not was_forwarded:
        return ticket  # a ticket held at intake waits for its operator whatever its versions say
    if held:
        version = ticket.source.source_version
        said = {"return": "退单", "review": "待人工判断"}.get(screen.outcome, screen.outcome)
        decision = screen.model_copy(update={
            "outcome": "review",
            "reason": f"第{version}版筛查结果为{said}：{screen.reason or screen.rule_id}"[:300]})
        return ticket.model_copy(update={"routing": ticket.routing.model_copy(update={"jurisdiction": decision})})
    if not ticket.sender_updates.held_versions():
        return ticket  # the decision the ticket was forwarded under stands; the version records its own screen
    versions = [v.model_copy(update={"held": False}) if v.held else v for v in ticket.sender_updates.versions]
    released = _with_updates(ticket, versions=versions)
    return released.model_copy(update={"routing": released.routing.model_copy(update={"jurisdiction": screen})})


def _said_before(ticket: Ticket, notice: FollowUpNotice) -> bool:
    return any(v.notice_key == notice.key for v in ticket.sender_updates.versions)
