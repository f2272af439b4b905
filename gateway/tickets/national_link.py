"""The national platform link: forwarding keeps the national registration number the platform answers with; a
partner's follow-ups go to the platform's follow-up endpoint, and its signed answers are kept on the ticket."""

from __future__ import annotations

import json
import logging
from datetime import datetime

from pydantic import ValidationError

from adapters.wire.results import SendResult
from adapters.wire.senders import Sender
from adapters.wire.webhooks import WebhookVerificationError, WebhookVerifier
from contracts.base import CHINA_STANDARD_TIME
from contracts.delivery import ClaimedDelivery, DeliveryKind
from contracts.followups import SenderUpdates
from contracts.national_followups import FOLLOW_UPS_PATH, NationalFollowUpAnswer
from contracts.ticket import Ticket
from gateway.store import ConcurrentUpdate, TicketStore
from gateway.tickets.links import number_links_back
from gateway.tickets.updates import TicketChange, answer_not_kept, update_ticket

FOLLOW_UP_KINDS = frozenset({DeliveryKind.UPDATE, DeliveryKind.URGE, DeliveryKind.WITHDRAW})

log = logging.getLogger(__name__)


def registration_number_of(body: str | None) -> str | None:
    """The `national_registration_no` of the platform's answer to a submission, if it gave one."""
    if not body:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    number = document.get("national_registration_no") if isinstance(document, dict) else None
    return number if isinstance(number, str) and 0 < len(number) <= 64 else None


async def record_registration_number(store: TicketStore, ticket_id: str, number: str) -> bool:
    """Store the number on the ticket unless it already has one; True when the ticket changed. Raises
    ConcurrentUpdate when other writers of the ticket won every try (the caller sends again)."""

    def keep_number(ticket: Ticket) -> tuple[Ticket | None, TicketChange | None]:
        if ticket.national_registration_no == number:
            return None, None
        if ticket.national_registration_no is not None:
            log.warning("national platform answered a second registration number",
                        extra={"ticket_id": ticket_id, "kept": ticket.national_registration_no, "offered": number})
            return None, None
        numbered = ticket.model_copy(update={"national_registration_no": number})
        return numbered, TicketChange(numbered)

    update = await update_ticket(store, ticket_id, keep_number)  # a status event may land meanwhile
    if update is None or not update.saved or update.verdict is None:
        return False
    await number_links_back(store, update.verdict)
    return True


def follow_ups_url(registration_url: str) -> str:
    """Where the platform takes follow-ups: beside its registration URL (…/api/v1/tickets/follow-ups)."""
    return f"{registration_url.rstrip('/')}/{FOLLOW_UPS_PATH}"


def answered(updates: SenderUpdates, answer: NationalFollowUpAnswer, at: datetime) -> SenderUpdates | None:
    """The ticket's follow-up record with the platform's answer kept on the follow-up it answers; None when it
    answers nothing new (a repeat, or a follow-up the ticket no longer lists)."""
    if answer.operation == "update":
        hit = next((i for i, v in enumerate(updates.versions)
                    if v.idempotency_key == answer.key and v.national_answered_at is None), None)
        if hit is None:
            return None
        versions = list(updates.versions)
        versions[hit] = versions[hit].model_copy(update={"national_answered_at": at})
        return updates.model_copy(update={"versions": versions})
    if answer.operation == "urge":
        hit = next((i for i, u in enumerate(updates.urges)
                    if u.key == answer.key and u.national_answered_at is None), None)
        if hit is None:
            return None
        urges = list(updates.urges)
        urges[hit] = urges[hit].model_copy(update={"national_answered_at": at})
        return updates.model_copy(update={"urges": urges})
    withdrawal = updates.withdrawal
    if withdrawal is None or withdrawal.key != answer.key or withdrawal.state != "requested":
        return None
    state = "refused" if answer.outcome == "refused" else "accepted"
    return updates.model_copy(update={"withdrawal": withdrawal.model_copy(update={
        "state": state, "national_answered_at": at, "national_reason": answer.reason})})


async def record_follow_up_answer(store: TicketStore, ticket_id: str, answer: NationalFollowUpAnswer) -> bool:
    """Keep the platform's answer to a follow-up on the ticket (and its registration number, when it had none);
    True when the ticket changed. A withdrawal's WITHDRAWN status comes as the platform's status event. Raises
    ConcurrentUpdate when other writers of the ticket won every try (the caller sends again)."""
    at = datetime.now(CHINA_STANDARD_TIME)

    def keep_answer(ticket: Ticket) -> tuple[Ticket | None, TicketChange | None]:
        updates = answered(ticket.sender_updates, answer, at)
        number = ticket.national_registration_no or answer.national_registration_no
        if updates is None and number == ticket.national_registration_no:
            return None, None
        kept = ticket.model_copy(update={
            "sender_updates": updates or ticket.sender_updates, "national_registration_no": number})
        return (kept if number != ticket.national_registration_no else None), TicketChange(kept)

    update = await update_ticket(store, ticket_id, keep_answer)  # status events and link backs may land meanwhile
    if update is None or not update.saved:
        return False
    if update.verdict is not None:  # the answer brought the ticket its registration number
        await number_links_back(store, update.verdict)
    return True


class NationalForwardSender:
    """Sends like the lane's own sender; on success, keeps the registration number on the ticket. A follow-up (an
    update, urge or withdrawal) goes to the platform's follow-up endpoint instead, and its answer, once its
    signature verifies, is kept on the ticket."""

    def __init__(self, inner: Sender, store: TicketStore, *, follow_ups: Sender | None = None,
                 verifier: WebhookVerifier | None = None) -> None:
        self.inner = inner
        self.store = store
        self.follow_ups = follow_ups
        self.verifier = verifier

    async def send(self, claim: ClaimedDelivery) -> SendResult:
        if claim.kind in FOLLOW_UP_KINDS and self.follow_ups is not None:
            return await self._send_follow_up(claim, self.follow_ups)
        result = await self.inner.send(claim)
        if result.status_code is not None and 200 <= result.status_code < 300:
            number = registration_number_of(result.body)
            if number is not None:
                try:
                    await record_registration_number(self.store, claim.ticket_id, number)
                except ConcurrentUpdate:  # never delivered without its number
                    return answer_not_kept(claim, result, f"registered as {number}")
        return result

    async def _send_follow_up(self, claim: ClaimedDelivery, sender: Sender) -> SendResult:
        result = await sender.send(claim)
        if result.status_code is None or not 200 <= result.status_code < 300 or not result.body:
            return result
        if self.verifier is not None:
            try:
                self.verifier.verify(result.signature_headers, result.body)
            except WebhookVerificationError as err:
                # Delivered all the same (the platform took it); what it answered is not trusted, so not kept.
                log.warning("national answer to a follow-up is not signed as it should be", extra={
                    "ticket_id": claim.ticket_id, "delivery_id": claim.delivery_id, "reason": str(err)})
                return result
        try:
            answer = NationalFollowUpAnswer.model_validate_json(result.body)
        except ValidationError:
            log.warning("national answer to a follow-up cannot be read", extra={
                "ticket_id": claim.ticket_id, "delivery_id": claim.delivery_id})
            return result
        try:
            await record_follow_up_answer(self.store, claim.ticket_id, answer)
        except ConcurrentUpdate:  # never delivered without its answer on the ticket: it is what settles the follow-up
            return answer_not_kept(claim, result, f"{answer.operation} answered {answer.outcome}")
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()
        if self.follow_ups is not None:
            await self.follow_ups.aclose()
