"""Cross-line duplicates: a ticket of the same complainant about the same respondent, on a similar matter and received
within N days of another, is linked to it on both tickets with the score and the reasons — never dropped."""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz

from contracts.base import CHINA_STANDARD_TIME
from contracts.ticket import LINKS_KEPT, Ticket, TicketLink
from gateway.config import LinkSettings
from gateway.errors import GatewayError
from gateway.store import ConcurrentUpdate, LinkCandidate, LinkQuery, TicketStore
from gateway.tickets.text import normalise
from gateway.tickets.updates import TicketChange, update_ticket

log = logging.getLogger(__name__)

_NOT_WORDS = re.compile(r"[\W_]+")
DAY_S = 86400.0

# A ticket as intake holds it, or as a duplicate look-up reads a stored one: the same field names.
Linkable = Ticket | LinkCandidate

# What each kind of mark says when two tickets share it (Chinese: operators read the reasons).
_COMPLAINANT_REASONS = {"phone": "同一投诉人（联系电话相同）", "id": "同一投诉人（证件号码相同）"}
_RESPONDENT_REASONS = {"uscc": "同一被投诉方（统一社会信用代码相同）", "name": "同一被投诉方（名称与所在地区相同）"}


def _words(text: str) -> str:
    """Normalised (full-width, case, traditional forms, spaces) and without punctuation."""
    return _NOT_WORDS.sub("", normalise(text))


def complainant_marks(ticket: Linkable) -> dict[str, str]:
    """Who complains, by kind: the phone (E.164, as the contract keeps it) and the ID number."""
    c = ticket.complainant
    marks = {}
    if c.phone:
        marks["phone"] = c.phone
    if c.id_number:
        marks["id"] = c.id_number.strip().upper()
    return marks


def respondent_marks(ticket: Linkable) -> dict[str, str]:
    """About whom, by kind: the USCC, and the normalised name with the region it operates in (or the incident's)."""
    r = ticket.respondent
    marks = {}
    if r.uscc:
        marks["uscc"] = r.uscc
    region = r.operating_region_code or ticket.occurrence.incident_region_code
    name = _words(r.name) if r.name else ""
    if name and region:
        marks["name"] = f"{name}@{region}"
    return marks


def link_marks(ticket: Ticket) -> list[str]:
    """What the store indexes a ticket under and finds its candidates by: every complainant mark with every
    respondent mark ("phone:+86…|uscc:…"); none when either side is unknown."""
    respondents = respondent_marks(ticket)
    return [f"{ck}:{cv}|{rk}:{rv}" for ck, cv in complainant_marks(ticket).items() for rk, rv in respondents.items()]


def matter_of(ticket: Linkable) -> str:
    """The matter as compared: title, content and request, normalised, as a set of character bigrams (Chinese has no
    spaces: two tellings of one matter share most bigrams in any order and wording)."""
    reg = ticket.registration
    text = _words(" ".join(t for t in (reg.title, reg.content, reg.request) if t))
    return " ".join(sorted({text[i:i + 2] for i in range(len(text) - 1)}))


def similarity(a: str, b: str) -> float:
    """Of two matters (`matter_of`), 0–1: rapidfuzz's token set ratio over their bigrams."""
    return fuzz.token_set_ratio(a, b) / 100.0


@dataclass(frozen=True)
class Pairing:
    """How two tickets compare: the score the threshold is held against, and why."""

    score: float
    similarity: float
    days_apart: float
    reasons: tuple[str, ...]


def compare(ticket: Ticket, other: Linkable, settings: LinkSettings, *, matter: str | None = None) -> Pairing | None:
    """The pairing of two tickets; None unless they share a complainant and a respondent mark."""
    others_c, others_r = complainant_marks(other), respondent_marks(other)
    same_c = [k for k, v in complainant_marks(ticket).items() if others_c.get(k) == v]
    same_r = [k for k, v in respondent_marks(ticket).items() if others_r.get(k) == v]
    if not same_c or not same_r:
        return None
    sim = similarity(matter if matter is not None else matter_of(ticket), matter_of(other))
    apart = abs((ticket.source.source_received_at - other.source.source_received_at).total_seconds()) / DAY_S
    closeness = max(0.0, 1.0 - apart / settings.window_days)
    score = (1.0 - settings.time_weight) * sim + settings.time_weight * closeness
    line = ("同一来源系统" if ticket.source.source_system == other.source.source_system
            else f"来源不同（{other.source.adapter_id} / {ticket.source.adapter_id}）")
    reasons = (*(_COMPLAINANT_REASONS[k] for k in same_c), *(_RESPONDENT_REASONS[k] for k in same_r),
               f"诉求内容相似度 {sim:.2f}", f"接收时间相隔 {apart:.1f} 天", line)
    return Pairing(round(score, 3), round(sim, 3), round(apart, 2), reasons)


def link_to(other: Linkable, pairing: Pairing, at: datetime) -> TicketLink:
    """The link a ticket shows to `other`."""
    return TicketLink(ticket_id=other.ticket_id, national_registration_no=other.national_registration_no,
                      adapter_id=other.source.adapter_id, source_ticket_no=other.source.source_ticket_no,
                      received_at=other.source.source_received_at, score=pairing.score,
                      similarity=pairing.similarity, days_apart=pairing.days_apart, reasons=list(pairing.reasons),
                      linked_at=at)


def links_back(ticket: Ticket) -> dict[str, TicketLink]:
    """By the id of each ticket `ticket` links to, the link that ticket shows back to `ticket`."""
    return {link.ticket_id: link.model_copy(update={
        "ticket_id": ticket.ticket_id, "national_registration_no": ticket.national_registration_no,
        "adapter_id": ticket.source.adapter_id, "source_ticket_no": ticket.source.source_ticket_no,
        "received_at": ticket.source.source_received_at}) for link in ticket.links}


def _is_version_of(ticket: Ticket, other: Linkable) -> bool:
    """Another version of the same source ticket: an update, not a duplicate."""
    return (ticket.source.source_system, ticket.source.source_ticket_no) == (
        other.source.source_system, other.source.source_ticket_no)


class Linker:
    """How a new ticket is looked up among the stored ones, linked to its duplicates, and shown on theirs."""

    def __init__(self, settings: LinkSettings) -> None:
        self.settings = settings

    def look_up(self, ticket: Ticket) -> tuple[list[str], LinkQuery | None]:
        """The ticket's link marks and the look-up of its candidates (None when it has no marks)."""
        marks = link_marks(ticket)
        if not marks:
            return marks, None
        window = timedelta(days=self.settings.window_days)
        at = ticket.source.source_received_at
        return marks, LinkQuery(tuple(marks), at - window, at + window, limit=self.settings.candidates)

    def linked(self, ticket: Ticket, found: Sequence[LinkCandidate], *, now: datetime | None = None) -> Ticket:
        """The ticket with its links to the candidates `found` that score at or above the threshold, best first
        (none: the ticket without links, whatever the partner sent)."""
        links: list[TicketLink] = []
        matter = matter_of(ticket) if found else ""
        linked_at = now or datetime.now(CHINA_STANDARD_TIME)
        for other in found:
            if other.ticket_id == ticket.ticket_id or _is_version_of(ticket, other):
                continue
            pairing = compare(ticket, other, self.settings, matter=matter)
            if pairing is not None and pairing.score >= self.settings.threshold:
                links.append(link_to(other, pairing, linked_at))
        links.sort(key=lambda link: link.score, reverse=True)
        if links or ticket.links:
            ticket = ticket.model_copy(update={"links": links[:min(self.settings.max_links, LINKS_KEPT)]})
        return ticket

    def backs(self, ticket: Ticket) -> tuple[dict[str, TicketLink], int]:
        """The link each ticket a new one links to is to show back, by its id, and how many links an earlier ticket
        shows at most (its own and those back: twice `max_links`)."""
        return (links_back(ticket) if ticket.links else {}), min(LINKS_KEPT, 2 * self.settings.max_links)

    def told(self, ticket: Ticket, shown: Sequence[str] | None) -> None:
        """Log a stored new ticket's links, and each linked ticket that does not show it back (`shown`: those that
        do; None when other writers kept changing them, which then keep their side unshown)."""
        if shown is None:
            log.error("could not show the links on the earlier tickets",
                      extra={"ticket_id": ticket.ticket_id, "linked": sorted(link.ticket_id for link in ticket.links)})
            shown = ()
        for other_id in sorted({link.ticket_id for link in ticket.links} - set(shown)):
            # A matter reported over and over: each new report names its best matches, the earlier ones stop
            # growing (each candidate read parses them all).
            log.info("the earlier ticket does not show the link (as many links as configured, or it was not written)",
                     extra={"ticket_id": other_id, "linked": ticket.ticket_id})
        log.info("ticket linked to possible duplicates", extra={
            "ticket_id": ticket.ticket_id, "adapter_id": ticket.source.adapter_id,
            "links": [{"ticket_id": k.ticket_id, "score": k.score} for k in ticket.links]})


def _numbered(ticket: Ticket, other_id: str, number: str) -> tuple[bool, TicketChange | None]:
    """The ticket with `number` on its link to `other_id`, where that link has none yet."""
    links = list(ticket.links)
    for n, link in enumerate(links):
        if link.ticket_id == other_id and link.national_registration_no is None:
            links[n] = link.model_copy(update={"national_registration_no": number})
            return True, TicketChange(ticket.model_copy(update={"links": links}))
    return False, None


async def number_links_back(store: TicketStore, ticket: Ticket) -> list[str]:
    """The ticket's national registration number, now known, on the link each ticket it links to shows back to it:
    that link was written when the ticket came in, before the platform registered it. The ids of the tickets
    changed; one that other writers kept changing keeps its link unnumbered (logged: the number is on the ticket)."""
    number = ticket.national_registration_no
    changed: list[str] = []
    if number is None:
        return changed
    for other_id in dict.fromkeys(link.ticket_id for link in ticket.links):
        try:
            update = await update_ticket(store, other_id, functools.partial(_numbered, other_id=ticket.ticket_id,
                                                                            number=number))
        except ConcurrentUpdate:
            log.warning("could not show the registration number on a linked ticket", extra={
                "ticket_id": other_id, "linked": ticket.ticket_id})
            continue
        if update is not None and update.saved:
            changed.append(other_id)
    return changed


class LinkDecision(BaseModel):
    """An operator's word on a link: the two tickets are one matter (confirm), or not (dismiss)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decision: Literal["confirm", "dismiss"]
    note: Annotated[str, Field(max_length=300)] | None = None  # Chinese, why


class LinkRefused(GatewayError, LookupError):
    """No such ticket, or it has no link to the other one."""


@dataclass(frozen=True)
class Decided:
    """The link as it now stands on the ticket, and on the other ticket when it shows one back."""

    link: TicketLink
    back: TicketLink | None


def _decide(ticket: Ticket, other_id: str, decision: LinkDecision, actor: str,
            at: datetime) -> tuple[TicketLink | None, TicketChange | None]:
    state: Literal["confirmed", "dismissed"] = "confirmed" if decision.decision == "confirm" else "dismissed"
    links = list(ticket.links)
    for n, link in enumerate(links):
        if link.ticket_id == other_id:
            links[n] = link.model_copy(update={"state": state, "decided_by": actor[:100], "decided_at": at,
                                               "note": decision.note})
            return links[n], TicketChange(ticket.model_copy(update={"links": links}))
    return None, None


async def decide_link(store: TicketStore, ticket_id: str, other_id: str, decision: LinkDecision, *, actor: str,
                      now: datetime | None = None) -> Decided:
    """Confirm or dismiss the link between two tickets, on both (each through the update seam)."""
    at = now or datetime.now(CHINA_STANDARD_TIME)
    update = await update_ticket(store, ticket_id, lambda t: _decide(t, other_id, decision, actor, at))
    if update is None:
        raise LinkRefused(f"no ticket {ticket_id}")
    if update.verdict is None:
        raise LinkRefused(f"ticket {ticket_id} has no link to {other_id}")
    back = await update_ticket(store, other_id, lambda t: _decide(t, ticket_id, decision, actor, at))
    log.info("link decided", extra={"ticket_id": ticket_id, "linked": other_id, "decision": decision.decision,
                                    "actor": actor})
    return Decided(update.verdict, back.verdict if back is not None else None)

