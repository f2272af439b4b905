"""Routing rules: which systems besides the national platform hear of a ticket; the handler comes from `handlers`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.base import CHINA_STANDARD_TIME
from contracts.codesets import Urgency
from contracts.delivery import DeliveryKind, OutboxEntry
from contracts.national_followups import registration_key
from contracts.status import StatusEvent
from contracts.ticket import Evidence, RouteDecision, Ticket
from contracts.yamldoc import load_yaml_model
from gateway.tickets.handlers import Handlers, OrganisationTable, load_organisations
from gateway.tickets.route_rules import Condition, RoutingRule, check_lanes, unique_rule_ids
from gateway.tickets.text import TicketText
from mapping.engine import Returned

__all__ = ["Condition", "OrganisationTable", "Router", "RoutingConfig", "RoutingRule", "RuleReturn"]

NATIONAL = "national"
URGENT_PRIORITY = 0
NORMAL_PRIORITY = 1
ROUTES_KEPT = 100  # Routing.routes: the latest decisions when a long-lived ticket has had more


@dataclass(frozen=True)
class RuleReturn:
    """A routing rule sent the ticket back (退单): what the partner hears, and which rule said so on what."""

    returned: Returned
    rule_id: str
    evidence: tuple[Evidence, ...]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)




class RoutingConfig(_Strict):
    national_destination: str = NATIONAL
    organisations_file: str = "organisations.yaml"
    rules: list[RoutingRule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rule_ids_unique(self) -> RoutingConfig:
        repeated = unique_rule_ids(self.rules)
        if repeated:
            raise ValueError(f"rule ids must be unique (a route names its rule): {', '.join(repeated)}")
        return self


def routed_body(ticket_json: str, event: StatusEvent | None, rule: str, route: RouteDecision | None = None) -> bytes:
    """What a side system receives: the canonical ticket, the event that triggered it, and why (the rule's name,
    and its decision with the evidence). `ticket_json` is the routed ticket's JSON as stored: a ticket is
    serialised once, however many lanes it goes to."""
    document = (f'{{"rule":{json.dumps(rule, ensure_ascii=False)},'
                f'"route":{route.model_dump_json() if route is not None else "null"},'
                f'"ticket":{ticket_json},'
                f'"event":{event.model_dump_json() if event is not None else "null"}}}')
    return document.encode("utf-8")


class Router:
    """Applies the routing configuration; pure once loaded."""

    def __init__(self, config: RoutingConfig, organisations: OrganisationTable, home_region: str, *,
                 file: Path | None = None) -> None:
        self.config = config
        self.file = file  # the routing file, for errors that name its lines
        self.handlers = Handlers(organisations, home_region)
        self.organisations = self.handlers.organisations
        self.home_region = home_region

    @classmethod
    def from_files(cls, routing_file: Path, home_region: str) -> Router:
        config = load_yaml_model(routing_file, RoutingConfig)
        return cls(config, load_organisations(routing_file.parent / config.organisations_file), home_region,
                   file=routing_file)

    @property
    def destinations(self) -> set[str]:
        return {self.config.national_destination} | {r.destination for r in self.config.rules}

    def assign_handler(self, ticket: Ticket) -> Ticket:
        """Set the handling organisation (`handlers.Handlers.assign`): never silently the province."""
        return self.handlers.assign(ticket)

    def handling(self, ticket: Ticket) -> dict[str, object]:
        """The routing update `assign_handler` makes, for a caller that makes one copy of several updates."""
        return self.handlers.handling(ticket)

    def intake_routes(self, ticket: Ticket) -> tuple[Ticket, list[OutboxEntry]]:
        """A new ticket's side deliveries, and the ticket with each one's decision (rule and evidence) on it."""
        routed, entries, _ = self._routes("intake", ticket, None)
        return routed, entries

    def status_routes(self, ticket: Ticket, event: StatusEvent) -> tuple[Ticket, list[OutboxEntry]]:
        """A status change's side deliveries (filed → enforcement, …), and the ticket with their decisions."""
        routed, entries, _ = self._routes("status", ticket, event)
        return routed, entries

    def forward_entry(self, ticket: Ticket, forward_body: bytes) -> OutboxEntry:
        """The national platform's delivery: ahead of normal traffic for 特急, or when a rule routed the ticket
        urgently (a mass food poisoning sent without the 特急 code is no less urgent for the platform)."""
        urgent = ticket.classification.urgency is Urgency.CRITICAL or any(
            r.urgent for r in ticket.routing.routes if r.trigger == "intake")
        # Registered under its first version's key, whichever version it has reached (a ticket held for review
        # may be updated before it is forwarded): the key its follow-ups name.
        return OutboxEntry(destination=self.config.national_destination, kind=DeliveryKind.FORWARD,
                           body=forward_body, priority=URGENT_PRIORITY if urgent else NORMAL_PRIORITY,
                           idempotency_key=registration_key(ticket))

    def intake_outbox(self, ticket: Ticket) -> tuple[Ticket, str, list[OutboxEntry]]:
        """What a ticket taken on sends — the national forward first, then what the intake rules add (特急, …) —
        with the ticket that records each route's rule and evidence, and its JSON (stored, and forwarded as is)."""
        routed, entries, ticket_json = self._routes("intake", ticket, None)
        if ticket_json is None:
            ticket_json = routed.model_dump_json()
        return routed, ticket_json, [self.forward_entry(routed, ticket_json.encode("utf-8")), *entries]

    def returned(self, ticket: Ticket) -> RuleReturn | None:
        """The first intake rule with action return that the ticket meets: the ticket goes back to its sender."""
        text = TicketText(ticket)
        for rule in self.config.rules:
            if rule.action != "return" or rule.trigger != "intake" or rule.return_reason is None:
                continue
            evidence = rule.when.evidence(ticket, text)
            if evidence is not None:
                returned = Returned(reason_code=rule.return_reason.code, reason=rule.return_reason.reason,
                                    source_ticket_no=ticket.source.source_ticket_no)
                return RuleReturn(returned, rule.rule_id, tuple(evidence))
        return None

    def _routes(self, trigger: Literal["intake", "status"], ticket: Ticket,
                event: StatusEvent | None) -> tuple[Ticket, list[OutboxEntry], str | None]:
        """The side deliveries, the ticket with their decisions, and its JSON when it was routed (serialised
        once: each routed body embeds it, and intake stores and forwards it as is)."""
        # One delivery per destination and trigger: the first rule that matches decides (rules are listed most
        # pressing first), so a 特急 mass poisoning reaches emergency command once, not once per rule.
        text = TicketText(ticket)
        chosen: dict[str, tuple[RoutingRule, list[Evidence]]] = {}
        for rule in self.config.rules:
            if rule.trigger != trigger or rule.action != "route" or rule.destination in chosen:
                continue
            evidence = rule.when.evidence(ticket, text)
            if evidence is not None:
                chosen[rule.destination] = (rule, evidence)
        if not chosen:
            return ticket, [], None
        at = datetime.now(CHINA_STANDARD_TIME)
        decisions = [(rule, RouteDecision(destination=rule.destination, rule_id=rule.rule_id, trigger=trigger,
                                          urgent=rule.urgent, evidence=evidence, at=at))
                     for rule, evidence in chosen.values()]
        routes = [*ticket.routing.routes, *(d for _, d in decisions)][-ROUTES_KEPT:]
        ticket = ticket.model_copy(update={"routing": ticket.routing.model_copy(update={"routes": routes})})
        # A key per route, not the ticket's: a side system may hear one ticket more than once (credit: a listed
        # respondent at intake, a penalty at closing), and must not drop the second as a resend of the first.
        occasion = "intake" if event is None else str(event.sequence)
        ticket_json = ticket.model_dump_json()
        entries = [OutboxEntry(destination=rule.destination, kind=DeliveryKind.ROUTED,
                               body=routed_body(ticket_json, event, rule.name, decision),
                               priority=URGENT_PRIORITY if rule.urgent else NORMAL_PRIORITY,
                               idempotency_key=f"{ticket.idempotency_key}:{rule.destination}:{occasion}")
                   for rule, decision in decisions]
        return ticket, entries, ticket_json

    def check_lanes(self, lanes: set[str], lanes_file: Path) -> None:
        """Every destination the routing file names is a lane; YamlFileError naming line and key otherwise."""
        if self.file is not None:
            check_lanes(self.file, self.config.rules, self.config.national_destination, lanes, lanes_file)
