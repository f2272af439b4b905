"""Routing rules: which organisation handles a ticket, and which systems besides the national platform hear of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.codesets import BusinessType, HandlerLevel, Status, Urgency
from contracts.delivery import DeliveryKind, OutboxEntry
from contracts.identifiers import IdentifierError, region_chain
from contracts.status import StatusEvent
from contracts.ticket import Ticket
from contracts.yamldoc import load_yaml_model

NATIONAL = "national"
URGENT_PRIORITY = 0
NORMAL_PRIORITY = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Organisation(_Strict):
    code: Annotated[str, Field(min_length=1, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    level: HandlerLevel
    region_code: Annotated[str, Field(pattern=r"^\d{6}$")]
    parent: str | None = None
    areas: list[str] = Field(default_factory=list)  # streets and towns a station covers


class OrganisationTable(_Strict):
    organisations: list[Organisation]

    @model_validator(mode="after")
    def _codes_unique_and_parents_known(self) -> OrganisationTable:
        codes = [o.code for o in self.organisations]
        repeated = sorted({c for c in codes if codes.count(c) > 1})
        if repeated:
            raise ValueError(f"organisation codes must be unique: {', '.join(repeated)}")
        unknown = sorted({o.parent for o in self.organisations if o.parent and o.parent not in codes})
        if unknown:
            raise ValueError(f"unknown parent organisations: {', '.join(unknown)}")
        return self


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
        self.organisations = organisations.organisations
        self.home_region = home_region
        self._by_region: dict[str, list[Organisation]] = {}  # looked up once per ticket: no scan of the table
        for org in self.organisations:
            self._by_region.setdefault(org.region_code, []).append(org)

    @classmethod
    def from_files(cls, routing_file: Path, home_region: str) -> Router:
        config = load_yaml_model(routing_file, RoutingConfig)
        table = load_yaml_model(routing_file.parent / config.organisations_file, OrganisationTable)
        return cls(config, table, home_region)

    @property
    def destinations(self) -> set[str]:
        return {self.config.national_destination} | {r.destination for r in self.config.rules}

    def assign_handler(self, ticket: Ticket) -> Ticket:
        """Set the handling organisation from the ticket's region: the lowest level present for it.

        Complaints go where the respondent operates; reports where the conduct happened (the rules'
        jurisdiction articles). A region outside this gateway's area is left to the national platform.
        """
        if ticket.classification.business_type is BusinessType.REPORT:
            region = ticket.occurrence.incident_region_code or ticket.respondent.operating_region_code
        else:
            region = ticket.respondent.operating_region_code or ticket.occurrence.incident_region_code
        region = region or ticket.complainant.region_code or self.home_region
        org = self._organisation_for(region, self._address_of(ticket))
        routing = ticket.routing.model_copy(update={
            "handler_org_code": org.code if org else None,
            "handler_org_name": org.name if org else None,
            "handler_level": org.level if org else HandlerLevel.NATION,
        })
        return ticket.model_copy(update={"routing": routing})

    def _address_of(self, ticket: Ticket) -> str:
        parts = (ticket.respondent.operating_address, ticket.occurrence.incident_address)
        return " ".join(p for p in parts if p)

    def _organisation_for(self, region: str, address: str) -> Organisation | None:
        try:
            chain = [r.code for r in region_chain(region)]
        except IdentifierError:
            chain = [region]
        for code in reversed(chain):  # most specific region first
            here = self._by_region.get(code, [])
            station = next((o for o in here if o.level is HandlerLevel.STATION
                            and any(area in address for area in o.areas)), None)
            if station is not None:
                return station
            office = next((o for o in here if o.level is not HandlerLevel.STATION), None)
            if office is not None:
                return office
        return None

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
