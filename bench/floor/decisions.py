"""The business decisions the gateway must make about each ticket at intake, with nothing around them, for the floor
server's `--decide` variant: what a floor costs once it also does what issues 15 and 16 require of every intake.

After the floor's hand-written mapping, with the gateway's own configuration and functions (the work, not the
gateway's plumbing): the jurisdiction screen; the handling organisation and statutory deadlines (`prepare`); the
routing rules' 退单 check and the outbox (the national forward and every side delivery, their bodies); the
duplicate-link marks, their index keys and the look-up of earlier tickets under them (the store's read, the
candidates parsed); the look-up of the partner's number (a later version updates its ticket); and the ticket's log
line through the gateway's formatter. The store writes what the gateway writes on top of the floor's rows: each
delivery of the outbox, the partner's number and the link index entries.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from contracts.delivery import OutboxEntry
from contracts.ticket import Ticket
from gateway.config import LinkSettings, load_settings
from gateway.logs import JsonLineFormatter
from gateway.runtime import load_components
from gateway.store.base import LinkQuery, Store
from gateway.store.link_candidate import LinkCandidate
from gateway.store.ticket_index import link_keys
from gateway.tickets.intake import IntakeService
from gateway.tickets.links import Linker


@dataclass(frozen=True)
class Decided:
    """A ticket taken on: as stored (routes, handler, deadlines), its JSON, its outbox (none when held for review;
    else the national forward first), its link index keys and the look-up of its candidates."""

    ticket: Ticket
    ticket_json: str
    outbox: list[OutboxEntry]
    link_keys: list[str]
    query: LinkQuery | None
    held: bool


class Decisions:
    """The gateway's intake decisions, loaded from its configuration (the `HIG_*` environment, as the gateway)."""

    def __init__(self) -> None:
        settings = load_settings()
        components = load_components(settings)
        self.intake = IntakeService(cast(Store, None), components.specs, components.router, components.rules,
                                    components.calendar, jurisdiction=components.jurisdiction)
        self.router = components.router
        self.linker = Linker(LinkSettings())
        self.phone_key = os.urandom(32)
        self.log = logging.getLogger("bench.floor.decisions")
        self.log.propagate = False
        handler = logging.StreamHandler(Path(os.devnull).open("w"))  # noqa: SIM115 (the process's lifetime)
        handler.setFormatter(JsonLineFormatter())
        self.log.addHandler(handler)
        self.log.setLevel(logging.INFO)

    def decide(self, ticket: Ticket) -> Decided | None:
        """The ticket as the gateway would store and send it; None when it goes back to its sender (退单)."""
        decision = self.intake.screen(ticket)
        if decision is not None and decision.outcome == "return":
            return None
        ticket = self.intake.prepare(ticket, decision)
        if self.router.returned(ticket) is not None:
            return None
        marks, query = self.linker.look_up(ticket)
        held = decision is not None and decision.outcome == "review"  # stored for an operator, nothing sent
        return Decided(*self.intake.with_outbox(ticket, held), link_keys(marks, self.phone_key), query, held)

    def linked(self, decided: Decided, candidates: Sequence[LinkCandidate]) -> Decided:
        """The decided ticket with its links to the candidates found (routed and serialised again, as the
        gateway does when its look-up finds any)."""
        ticket = self.linker.linked(decided.ticket, candidates)
        return Decided(*self.intake.with_outbox(ticket, decided.held), decided.link_keys, decided.query, decided.held)

    def logged(self, ticket_id: str, adapter_id: str) -> None:
        self.log.info("ticket stored", extra={"ticket_id": ticket_id, "adapter_id": adapter_id})
