"""The composition root: configuration files become a store, adapters, intake, status, workers and pollers."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from adapters.base import Adapter
from adapters.config import AdapterConfig
from adapters.destination import DestinationConfig
from adapters.loading import load_adapters, mapping_specs_for
from adapters.registry import build_adapters
from adapters.secrets import resolve_secret
from adapters.wire.senders import Sender, build_sender
from adapters.wire.webhooks import WebhookVerifier, generate_secret
from gateway.compaction import Compactor
from gateway.config import GatewaySettings
from gateway.delivery.config import DeliveryConfig, load_delivery_config
from gateway.delivery.engine import DeliveryEngine
from gateway.pollers import PollScheduler, start_pollers
from gateway.store import Store, open_store
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar
from gateway.tickets.enrichment import CreditEnricher
from gateway.tickets.intake import IntakeService
from gateway.tickets.jurisdiction import JurisdictionRules
from gateway.tickets.national_link import NationalForwardSender
from gateway.tickets.routing import Router
from gateway.tickets.status import StatusService
from mapping.spec import MappingSpec

log = logging.getLogger(__name__)


@dataclass
class Components:
    """Everything read from configuration, checked, before anything starts."""

    settings: GatewaySettings
    adapter_configs: dict[str, AdapterConfig]
    specs: dict[str, MappingSpec]
    router: Router
    rules: RuleBook
    calendar: WorkingDayCalendar
    delivery: DeliveryConfig
    jurisdiction: JurisdictionRules


def load_components(settings: GatewaySettings) -> Components:
    """Read every configuration file the gateway needs; each raises an error naming file, line and key."""
    adapter_configs = load_adapters(settings.resolve(settings.adapters_dir))
    routing_file = settings.resolve(settings.routing_file)
    return Components(
        settings=settings,
        adapter_configs=adapter_configs,
        specs=mapping_specs_for(adapter_configs),
        router=Router.from_files(routing_file, settings.region.code),
        rules=RuleBook.from_file(settings.resolve(settings.deadlines.rules_file)),
        calendar=WorkingDayCalendar.from_file(settings.resolve(settings.deadlines.calendar_overrides)),
        delivery=load_delivery_config(settings.resolve(settings.delivery_file)),
        jurisdiction=JurisdictionRules.from_file(settings.resolve(settings.jurisdiction_file)),
    )


def national_token(settings: GatewaySettings) -> str:
    return resolve_secret(settings.national.token_env, settings.resolved_data_dir, "national-token")[0]


def national_status_secrets(settings: GatewaySettings) -> list[str]:
    return resolve_secret(settings.national.status_secrets_env, settings.resolved_data_dir,
                          "national-status-secret", generate=generate_secret)


def lanes(components: Components, adapters: Mapping[str, Adapter], store: Store,
          configured: Sequence[DestinationConfig] | None = None, *, check_routing: bool = True
          ) -> tuple[list[DestinationConfig], dict[str, Sender]]:
    """Every delivery lane: the configured destinations (national with its token and number keeping),
    and one callback lane per adapter that writes status back, with that adapter's own sender.

    `configured`: the destinations to use instead of the delivery file's (a `worker` reads its own file);
    `check_routing`: refuse destinations that routing names but the configuration lacks."""
    settings = components.settings
    national = components.router.config.national_destination
    destinations: list[DestinationConfig] = []
    senders: dict[str, Sender] = {}
    for destination in components.delivery.destinations if configured is None else configured:
        if destination.name == national:
            headers = {**destination.headers, "Authorization": f"Bearer {national_token(settings)}"}
            destination = destination.model_copy(update={"headers": headers})
            senders[destination.name] = NationalForwardSender(build_sender(destination), store)
        destinations.append(destination)
    for adapter in adapters.values():
        callback = adapter.callback_destination()
        if callback is None:
            continue
        destinations.append(callback)
        sender = adapter.callback_sender()
        if sender is not None:
            senders[callback.name] = sender
    missing = components.router.destinations - {d.name for d in destinations}
    if missing and check_routing:
        raise ValueError(f"{settings.resolve(settings.routing_file)}: routing names destinations that "
                         f"{settings.resolve(settings.delivery_file)} does not define: {', '.join(sorted(missing))}")
    return destinations, senders


@dataclass
class Runtime:
    """The running gateway's parts; `start()` and `stop()` bracket the life of the process."""

    components: Components
    store: Store
    adapters: dict[str, Adapter]
    intake: IntakeService
    status: StatusService
    engine: DeliveryEngine | None = None
    pollers: PollScheduler | None = None
    enricher: CreditEnricher | None = None
    compactor: Compactor | None = None
    started: list[str] = field(default_factory=list)

    @property
    def settings(self) -> GatewaySettings:
        return self.components.settings

    @classmethod
    def build(cls, settings: GatewaySettings, *, store: Store | None = None) -> Runtime:
        components = load_components(settings)
        store = store or open_store(settings)
        adapters = build_adapters(components.adapter_configs)
        enricher: CreditEnricher | None = None
        if settings.credit_lookup.url:
            enricher = CreditEnricher(settings.credit_lookup.url,
                                      timeout_seconds=settings.credit_lookup.timeout_seconds)
        canonical = {i: c for i, c in components.adapter_configs.items() if c.enabled and c.is_canonical}
        intake = IntakeService(store, components.specs, components.router, components.rules, components.calendar,
                               canonical=canonical, callbacks=adapters, enrich=enricher,
                               jurisdiction=components.jurisdiction)
        status = StatusService(store, components.specs, components.router, adapters)
        return cls(components, store, adapters, intake, status, enricher=enricher)

    def national_verifier(self) -> WebhookVerifier:
        return WebhookVerifier(national_status_secrets(self.settings),
                               tolerance_seconds=self.settings.national.status_tolerance_seconds)

    async def start(self, *, workers: bool, pollers: bool) -> None:
        self.settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.open()
        self.started.append("store")
        health = await self.store.health()
        log.info("store open", extra={"store": self.settings.store.kind, "health": health})
        if workers:
            destinations, senders = lanes(self.components, self.adapters, self.store)
            self.engine = DeliveryEngine(self.store, destinations, settings=self.components.delivery.engine,
                                         senders=senders)
            await self.engine.start()
            days = self.settings.store.compact_delivered_after_days
            if days is not None:
                self.compactor = Compactor(self.store, days)
                self.compactor.start()
        if pollers:
            self.pollers = await start_pollers(self.adapters.values(), self.store, self.intake)

    async def stop(self) -> None:
        if self.compactor is not None:
            await self.compactor.stop()
        if self.pollers is not None:
            await self.pollers.stop()
        if self.engine is not None:
            await self.engine.stop()
        for adapter in self.adapters.values():
            await adapter.aclose()
        if self.enricher is not None:
            await self.enricher.aclose()
        if "store" in self.started:
            await self.store.close()

