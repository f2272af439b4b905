"""Prometheus metrics of one gateway app, in a registry of its own (several apps may live in one process)."""

from __future__ import annotations

from collections import Counter as Counter_
from collections.abc import Mapping, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from contracts.delivery import AttemptReceipt
from gateway.delivery.breaker import BreakerState
from gateway.delivery.policy import Decision
from gateway.store import AlertRecord

CONTENT_TYPE = CONTENT_TYPE_LATEST
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class OpsMetrics:
    """Counters fed as things happen (intake, attempts); gauges set from the store and engine at each scrape."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.intake = Counter("hig_intake", "Partner payloads taken, by adapter and outcome (created, repeat, "
                              "updated, review, quarantined, returned, error).", ["adapter", "outcome"], registry=r)
        self.mapping_failures = Counter("hig_mapping_failures", "Mapping errors of quarantined payloads, by adapter "
                                        "and the rule that was broken.", ["adapter", "rule"], registry=r)
        self.intake_seconds = Histogram("hig_intake_duration_seconds", "Time from payload to stored ticket "
                                        "(map, route, store with outbox).", ["adapter"], buckets=_LATENCY_BUCKETS,
                                        registry=r)
        self.attempts = Counter("hig_delivery_attempts", "Delivery attempts, by destination and what was decided "
                                "(delivered, retry, dead).", ["destination", "outcome"], registry=r)
        self.attempt_seconds = Histogram("hig_delivery_attempt_duration_seconds", "Duration of one delivery "
                                         "attempt.", ["destination"], buckets=_LATENCY_BUCKETS, registry=r)
        self.lane_depth = Gauge("hig_lane_depth", "Deliveries on a lane by state.", ["destination", "state"],
                                registry=r)
        self.oldest_waiting = Gauge("hig_lane_oldest_waiting_seconds", "Age of the oldest undelivered delivery "
                                    "(pending, retrying or in flight) on a lane.", ["destination"], registry=r)
        self.circuit = Gauge("hig_circuit_state", "Circuit breaker of a lane in this process: 1 for its current "
                             "state.", ["destination", "state"], registry=r)
        self.at_risk = Gauge("hig_tickets_deadline_risk", "Tickets whose most pressing running statutory time "
                             "limit is overdue or due soon.", ["risk"], registry=r)
        self.quarantine_open = Gauge("hig_quarantine_open", "Quarantined payloads waiting for an operator (neither "
                                     "re-mapped nor sent back as 退单), by adapter.", ["adapter"], registry=r)
        self.echo_behind = Gauge("hig_echo_behind_tickets", "Tickets whose originating partner has not heard their "
                                 "latest status (no delivered callback) for longer than echo.behind_after_seconds.",
                                 registry=r)
        self.poller_failures = Gauge("hig_poller_consecutive_failures", "Consecutive failed polls of a pulling "
                                     "adapter.", ["adapter"], registry=r)
        self.alerts_firing = Gauge("hig_alerts_firing", "Alerts firing now, by rule and severity.",
                                   ["rule", "severity"], registry=r)
        self.alert_messages = Counter("hig_alert_messages", "Alert messages enqueued for a channel (each groups the "
                                      "alerts that changed in one round), by channel.", ["channel"], registry=r)
        self.store_unreachable = Gauge("hig_store_unreachable_checks", "Consecutive failed store checks of the alert "
                                       "monitor in this process (0: the store answers).", registry=r)
        self.ops_actions = Counter("hig_ops_actions", "Operator actions, by action and outcome.",
                                   ["action", "outcome"], registry=r)

    # -- events ------------------------------------------------------------------------------------
    def observe_intake(self, adapter_id: str, outcome: str, seconds: float, rules: list[str]) -> None:
        self.intake.labels(adapter_id, outcome).inc()
        self.intake_seconds.labels(adapter_id).observe(seconds)
        for rule in rules:
            self.mapping_failures.labels(adapter_id, rule).inc()

    def observe_attempt(self, destination: str, attempt: AttemptReceipt, decision: Decision) -> None:
        outcome = decision.kind.value
        self.attempts.labels(destination, outcome).inc()
        self.attempt_seconds.labels(destination).observe(attempt.duration_ms / 1000)

    # -- state at scrape time -------------------------------------------------------------------------
    def set_lanes(self, stats: Mapping[str, Mapping[str, float]]) -> None:
        self.lane_depth.clear()
        self.oldest_waiting.clear()
        for destination, lane in stats.items():
            for state, value in lane.items():
                if state == "oldest_waiting_age_s":
                    self.oldest_waiting.labels(destination).set(value)
                else:
                    self.lane_depth.labels(destination, state).set(value)

    def set_breakers(self, states: Mapping[str, BreakerState | None]) -> None:
        self.circuit.clear()
        for destination, state in states.items():
            if state is None:
                continue
            for candidate in BreakerState:
                self.circuit.labels(destination, candidate.value).set(1.0 if candidate is state else 0.0)

    def set_risk(self, overdue: int, due_soon: int) -> None:
        self.at_risk.labels("overdue").set(overdue)
        self.at_risk.labels("due_soon").set(due_soon)

    def set_quarantine(self, open_by_adapter: Mapping[str, int]) -> None:
        self.quarantine_open.clear()
        for adapter_id, n in open_by_adapter.items():
            self.quarantine_open.labels(adapter_id).set(n)

    def set_pollers(self, failures: Mapping[str, int]) -> None:
        self.poller_failures.clear()
        for adapter_id, n in failures.items():
            self.poller_failures.labels(adapter_id).set(n)

    def set_alerts(self, firing: Sequence[AlertRecord], failed_store_checks: int) -> None:
        self.alerts_firing.clear()
        counts = Counter_((a.rule, a.severity) for a in firing)
        for (rule, severity), n in counts.items():
            self.alerts_firing.labels(rule, severity).set(n)
        self.store_unreachable.set(failed_store_checks)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
