"""The composition root: configuration files become a store, adapters, intake, status, workers and pollers."""

from __future__ import annotations

import copy
import logging
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adapters.base import Adapter
from adapters.config import AdapterConfig
from adapters.destination import DestinationConfig
from adapters.loading import load_adapters, mapping_specs_for
from adapters.registry import build_adapters
from adapters.secrets import resolve_secret
from adapters.wire.senders import Sender, build_sender
from adapters.wire.webhooks import WebhookVerifier, generate_secret
from contracts.yamldoc import YamlFileError
from gateway.alerts import AlertMonitor, AlertsConfig, channel_lanes, load_alerts_config
from gateway.alerts.rules import standard_rules
from gateway.compaction import Compactor
from gateway.config import ConfigError, GatewaySettings, load_settings
from gateway.delivery.breaker import BreakerSnapshot
from gateway.delivery.config import DeliveryConfig, load_delivery_config
from gateway.delivery.engine import DeliveryEngine, default_worker_id
from gateway.delivery.policy import Decision, DecisionKind
from gateway.pollers import PollerStatus, PollScheduler, start_pollers
from gateway.store import Store, TicketStore, open_store
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar
from gateway.tickets.enrichment import CreditEnricher
from gateway.tickets.handlers import adapter_region_problems
from gateway.tickets.intake import IntakeOutcome, IntakeService
from gateway.tickets.jurisdiction import JurisdictionRules
from gateway.tickets.links import Linker
from gateway.tickets.national_link import NationalForwardSender, follow_ups_url
from gateway.tickets.reporter_notice import DeadlineBasis, PartnerCallbackSender
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
    alerts: AlertsConfig


def load_components(settings: GatewaySettings) -> Components:
    """Read every configuration file the gateway needs; each raises an error naming file, line and key."""
    adapter_configs = load_adapters(settings.resolve(settings.adapters_dir))
    routing_file = settings.resolve(settings.routing_file)
    router = Router.from_files(routing_file, settings.region.code)
    # An adapter's tickets must find a handler below the province: never a silent province assignment.
    unhandled = adapter_region_problems(adapter_configs, router.handlers,
                                        routing_file.parent / router.config.organisations_file)
    if unhandled:
        raise YamlFileError(unhandled)
    delivery = load_delivery_config(settings.resolve(settings.delivery_file))
    # A rule naming a lane no file defines is found now, at its line, not when the first ticket matches it.
    callbacks = {c.callback_lane for c in adapter_configs.values() if c.callback is not None}
    router.check_lanes({d.name for d in delivery.destinations} | callbacks, settings.resolve(settings.delivery_file))
    return Components(
        settings=settings,
        adapter_configs=adapter_configs,
        specs=mapping_specs_for(adapter_configs),
        router=router,
        rules=RuleBook.from_file(settings.resolve(settings.deadlines.rules_file)),
        calendar=WorkingDayCalendar.from_file(settings.resolve(settings.deadlines.calendar_overrides)),
        delivery=delivery,
        jurisdiction=JurisdictionRules.from_file(settings.resolve(settings.jurisdiction_file)),
        alerts=(load_alerts_config(settings.resolve(settings.alerts_file)) if settings.alerts_file is not None
                else AlertsConfig()),
    )


def national_token(settings: GatewaySettings) -> str:
    return resolve_secret(settings.national.token_env, settings.resolved_data_dir, "national-token")[0]


def national_status_secrets(settings: GatewaySettings) -> list[str]:
    return resolve_secret(settings.national.status_secrets_env, settings.resolved_data_dir,
                          "national-status-secret", generate=generate_secret)


def lanes(components: Components, adapters: Mapping[str, Adapter], store: TicketStore,
          configured: Sequence[DestinationConfig] | None = None, *,
          deadlines: DeadlineBasis | None = None) -> tuple[list[DestinationConfig], dict[str, Sender]]:
    """Every delivery lane: the configured destinations (national with its token and number keeping),
    one callback lane per adapter that writes status back, with that adapter's own sender (keeping when a
    delivered filing decision told the reporter), and one lane per alert channel (`alert:<name>`).

    `configured`: the destinations to use instead of the delivery file's (a `worker` reads its own file).
    `deadlines`: the rules and calendar in force (default: the components'). That routing names only lanes that
    exist was checked when the components were loaded (load_components)."""
    settings = components.settings
    national = components.router.config.national_destination
    destinations: list[DestinationConfig] = []
    senders: dict[str, Sender] = {}
    for destination in components.delivery.destinations if configured is None else configured:
        if destination.name == national:
            headers = {**destination.headers, "Authorization": f"Bearer {national_token(settings)}"}
            destination = destination.model_copy(update={"headers": headers})
            # Follow-ups (update, urge, withdraw) go beside the registration URL; the platform signs its answers
            # with the key of its status events.
            follow_ups = None if destination.url is None else build_sender(
                destination.model_copy(update={"url": follow_ups_url(str(destination.url))}))
            senders[destination.name] = NationalForwardSender(
                build_sender(destination), store, follow_ups=follow_ups,
                verifier=WebhookVerifier(national_status_secrets(settings),
                                         tolerance_seconds=settings.national.status_tolerance_seconds))
        destinations.append(destination)
    for adapter in adapters.values():
        callback = adapter.callback_destination()
        if callback is None:
            continue
        destinations.append(callback)
        senders[callback.name] = PartnerCallbackSender(
            adapter.callback_sender() or build_sender(callback), store,
            deadlines or (lambda: (components.rules, components.calendar)))
    alert_destinations, alert_senders = channel_lanes(components.alerts)
    destinations += alert_destinations
    senders.update(alert_senders)
    return destinations, senders


def check_routed_lanes(components: Components, lanes: Iterable[str]) -> None:
    """Routing may only name lanes that exist: a ValueError naming both files otherwise."""
    missing = components.router.destinations - set(lanes)
    if missing:
        settings = components.settings
        raise ValueError(f"{settings.resolve(settings.routing_file)}: routing names destinations that "
                         f"{settings.resolve(settings.delivery_file)} does not define: {', '.join(sorted(missing))}")


@dataclass(frozen=True)
class Live:
    """What a reload replaces, in one assignment: the configuration and the services that read it."""

    components: Components
    intake: IntakeService
    status: StatusService


class CurrentIntake:
    """Intake as the latest reload left it, for what outlives a reload (push contexts, pollers). Each payload
    goes to the intake of the moment, which maps, routes and stores it under one configuration."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime

    def knows(self, adapter_id: str) -> bool:
        return self._runtime.live.intake.knows(adapter_id)

    def accept(self, adapter_id: str, payload: object, *, raw_body: bytes,
               content_type: str) -> Coroutine[Any, Any, IntakeOutcome]:
        # Not async: it hands back the intake's own coroutine, no extra frame on a push.
        return self._runtime.live.intake.accept(adapter_id, payload, raw_body=raw_body, content_type=content_type)


def own_file(settings: GatewaySettings) -> GatewaySettings | None:
    """The settings the gateway's file gives now (None when the settings were not read from a file or it no longer
    reads: a reload's own check reports that)."""
    if settings.config_file is None:
        return None
    try:
        return load_settings(settings.config_file)
    except ConfigError:
        return None


class Runtime:
    """The running gateway's parts; `start()` and `stop()` bracket the life of the process, `reload()` swaps
    in new configuration."""

    def __init__(self, components: Components, store: Store, adapters: dict[str, Adapter], intake: IntakeService,
                 status: StatusService, *, enricher: CreditEnricher | None = None) -> None:
        self.live = Live(components, intake, status)
        # What the transports (adapters, pollers) and the lanes were built from: a reload does not change them, so
        # what a reload cannot apply is measured against this, not against the last reload.
        self.started_components = components
        # The gateway's own file as it was at start (settings may also come from code or the environment): a reload
        # reads the file again and names every section that changed, none of which it applies.
        self.started_file = own_file(components.settings)
        self.store = store
        self.adapters = adapters
        self.enricher = enricher
        self.current_intake = CurrentIntake(self)
        self.engine: DeliveryEngine | None = None
        self.lane_senders: list[Sender] = []
        self.pollers: PollScheduler | None = None
        self.compactor: Compactor | None = None
        self.alerts: AlertMonitor | None = None
        self.started: list[str] = []

    @property
    def components(self) -> Components:
        return self.live.components

    @property
    def intake(self) -> IntakeService:
        return self.live.intake

    @property
    def status(self) -> StatusService:
        return self.live.status

    @property
    def settings(self) -> GatewaySettings:
        return self.live.components.settings

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
                               jurisdiction=components.jurisdiction,
                               linker=Linker(settings.links) if settings.links.enabled else None)
        status = StatusService(store, components.specs, components.router, adapters, components.rules,
                               components.calendar)
        return cls(components, store, adapters, intake, status, enricher=enricher)

    def check(self, components: Components) -> None:
        """Whether this runtime could run on `components`: routing names only lanes it has (a ValueError)."""
        lanes = {d.name for d in components.delivery.destinations}
        lanes |= {c.name for a in self.adapters.values() if (c := a.callback_destination()) is not None}
        check_routed_lanes(components, lanes)

    def reload(self, components: Components) -> None:
        """Run on `components` from now on: mapping specs, routing, deadline rules and calendar. The new intake
        and status services are built in full, then swapped in with one assignment, so a request runs on the
        old configuration or the new one, never a mix. Transports and lanes stay as started."""
        self.check(components)
        live = self.live
        # Shallow copies: the store, listeners, canonical adapters, callbacks and enricher stay shared.
        intake = copy.copy(live.intake)
        intake.specs, intake.router = components.specs, components.router
        intake.rules, intake.calendar = components.rules, components.calendar
        intake.jurisdiction = components.jurisdiction
        status = copy.copy(live.status)
        status.specs, status.router = components.specs, components.router
        status.rules, status.calendar = components.rules, components.calendar
        self.live = Live(components, intake, status)

    def national_verifier(self) -> WebhookVerifier:
        return WebhookVerifier(national_status_secrets(self.settings),
                               tolerance_seconds=self.settings.national.status_tolerance_seconds)

    async def start(self, *, workers: bool, pollers: bool, alerts: bool = True) -> None:
        """Open the store and start what runs beside it. `alerts`: the alert monitor, which a short-lived command
        leaves off — without this runtime's lanes and pollers it would judge their breakers and polls from empty
        state, and could take the store's `alerts` lock and fire or resolve alerts a running gateway owns."""
        self.settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        await self.store.open()
        self.started.append("store")
        health = await self.store.health()
        log.info("store open", extra={"store": self.settings.store.kind, "health": health})
        if workers:
            destinations, senders = lanes(self.components, self.adapters, self.store,
                                          deadlines=lambda: (self.components.rules, self.components.calendar))
            self.lane_senders = list(senders.values())
            self.engine = DeliveryEngine(self.store, destinations, settings=self.components.delivery.engine,
                                         senders=senders)
            await self.engine.start()
            days = self.settings.store.compact_delivered_after_days
            if days is not None:
                self.compactor = Compactor(self.store, days)
                self.compactor.start()
        if pollers:
            self.pollers = await start_pollers(self.adapters.values(), self.store, self.current_intake)
        if alerts:
            self.alerts = self.alert_monitor()
            self.alerts.start()

    def alert_monitor(self) -> AlertMonitor:
        """The alert monitor over this runtime: its lanes' breakers and dead letters, its pollers, the store's
        quarantine and tickets' deadlines (under the configuration in force); a dead letter wakes it."""
        def breakers() -> dict[str, BreakerSnapshot]:
            engine = self.engine
            return {} if engine is None else {name: lane.breaker for name, lane in engine.status().items()
                                              if lane.breaker is not None}

        def pollers() -> dict[str, PollerStatus]:
            return {} if self.pollers is None else dict(self.pollers.status())

        def wake_lane(lane: str) -> None:
            if self.engine is not None:
                self.engine.wake(lane)

        config = self.components.alerts
        rules = standard_rules(
            config, self.store, breakers=breakers, pollers=pollers,
            adapter_ids=lambda: sorted(self.components.adapter_configs),
            deadline_basis=lambda: (self.components.calendar, self.settings.deadlines.due_soon_working_days),
            echo_behind_after=lambda: self.settings.echo.behind_after_seconds)
        monitor = AlertMonitor(config, self.store, rules, region=self.settings.region.name,
                               owner=default_worker_id(), enqueued=wake_lane)
        if self.engine is not None:
            def on_attempt(destination: str, attempt: object, decision: Decision) -> None:
                if decision.kind is DecisionKind.DEAD:
                    monitor.wake()

            self.engine.add_listener(on_attempt)
        return monitor

    async def stop(self) -> None:
        if self.alerts is not None:
            await self.alerts.stop()
        if self.compactor is not None:
            await self.compactor.stop()
        if self.pollers is not None:
            await self.pollers.stop()
        if self.engine is not None:
            await self.engine.stop()
        for sender in self.lane_senders:  # made for the engine by lanes(), which only closes those it builds
            await sender.aclose()
        self.lane_senders = []
        for adapter in self.adapters.values():
            await adapter.aclose()
        if self.enricher is not None:
            await self.enricher.aclose()
        if "store" in self.started:
            await self.store.close()

