"""Routing rules: which systems besides the national platform hear of a ticket; the handler comes from `handlers`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.codesets import BusinessType, Status, Urgency
from contracts.delivery import DeliveryKind, OutboxEntry
from contracts.status import StatusEvent
from contracts.ticket import Ticket
from contracts.yamldoc import load_yaml_model
from gateway.tickets.handlers import Handlers, OrganisationTable, load_organisations

NATIONAL = "national"
URGENT_PRIORITY = 0
NORMAL_PRIORITY = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """All given fields must match; a list means any of its values."""

    business_type: list[BusinessType] | None = None
    urgency: list[Urgency] | None = None
    status: list[Status] | None = None
    has_penalty: bool | None = None
    region_prefix: Annotated[str, Field(pattern=r"^\d{2,6}$")] | None = None

    def matches(self, ticket: Ticket) -> bool:
        result = ticket.lifecycle.result
        penalised = result is not None and bool(result.penalty_amount or result.confiscation_amount)
        region = ticket.respondent.operating_region_code or ticket.occurrence.incident_region_code or ""
        return all((
            self.business_type is None or ticket.classification.business_type in self.business_type,
            self.urgency is None or ticket.classification.urgency in self.urgency,
            self.status is None or ticket.lifecycle.status in self.status,
            self.has_penalty is None or penalised == self.has_penalty,
            self.region_prefix is None or region.startswith(self.region_prefix),
        ))


class RoutingRule(_Strict):
    name: Annotated[str, Field(min_length=1)]
    trigger: Literal["intake", "status"]
    when: Condition = Field(default_factory=Condition)
    destination: Annotated[str, Field(min_length=1, max_length=64)]
    urgent: bool = False  # goes on the lane ahead of normal traffic


class RoutingConfig(_Strict):
    national_destination: str = NATIONAL
    organisations_file: str = "organisations.yaml"
    rules: list[RoutingRule] = Field(default_factory=list)


def routed_body(ticket: Ticket, event: StatusEvent | None, rule: str) -> bytes:
    """What a side system receives: the canonical ticket, the event that triggered it, and why."""
    document = {
        "rule": rule,
        "ticket": ticket.model_dump(mode="json"),
        "event": event.model_dump(mode="json") if event is not None else None,
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class Router:
    """Applies the routing configuration; pure once loaded."""

    def __init__(self, config: RoutingConfig, organisations: OrganisationTable, home_region: str) -> None:
        self.config = config
        self.handlers = Handlers(organisations, home_region)
        self.organisations = self.handlers.organisations
        self.home_region = home_region

    @classmethod
    def from_files(cls, routing_file: Path, home_region: str) -> Router:
        config = load_yaml_model(routing_file, RoutingConfig)
        return cls(config, load_organisations(routing_file.parent / config.organisations_file), home_region)

    @property
    def destinations(self) -> set[str]:
        return {self.config.national_destination} | {r.destination for r in self.config.rules}

    def assign_handler(self, ticket: Ticket) -> Ticket:
        """Set the handling organisation (`handlers.Handlers.assign`): never silently the province."""
        return self.handlers.assign(ticket)

    def intake_outbox(self, ticket: Ticket, forward_body: bytes) -> list[OutboxEntry]:
        """A new ticket: forward it to the national platform, plus what intake rules add (e.g. 特急)."""
        urgent = ticket.classification.urgency is Urgency.CRITICAL
        entries = [OutboxEntry(destination=self.config.national_destination, kind=DeliveryKind.FORWARD,
                               body=forward_body, priority=URGENT_PRIORITY if urgent else NORMAL_PRIORITY)]
        entries += self._rule_entries("intake", ticket, None)
        return entries

    def status_outbox(self, ticket: Ticket, event: StatusEvent) -> list[OutboxEntry]:
        """A status change: side deliveries the status rules ask for (filed → enforcement, …)."""
        return self._rule_entries("status", ticket, event)

    def _rule_entries(self, trigger: str, ticket: Ticket, event: StatusEvent | None) -> list[OutboxEntry]:
        return [
            OutboxEntry(destination=rule.destination, kind=DeliveryKind.ROUTED,
                        body=routed_body(ticket, event, rule.name),
                        priority=URGENT_PRIORITY if rule.urgent else NORMAL_PRIORITY)
            for rule in self.config.rules
            if rule.trigger == trigger and rule.when.matches(ticket)
        ]
