"""Hooks that feed ops metrics and the chart: an intake that reports each outcome, a listener on delivery attempts."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.delivery.engine import AttemptListener, DeliveryEngine
from gateway.intake import IntakeOutcome, IntakeService

# adapter id, outcome kind ("created", "repeat", "quarantined", "returned" or "error"), seconds, the outcome
IntakeListener = Callable[[str, str, float, IntakeOutcome | None], None]


class ObservedIntake(IntakeService):
    """The same intake (same store, specs, router, rules, calendar), telling a listener what became of each payload."""

    def __init__(self, inner: IntakeService, listener: IntakeListener) -> None:
        super().__init__(inner.store, inner.specs, inner.router, inner.rules, inner.calendar,
                         canonical=inner.canonical, callbacks=inner.callbacks, enrich=inner.enrich)
        self.listener = listener

    async def accept(self, adapter_id: str, payload: object, *, raw_body: bytes, content_type: str) -> IntakeOutcome:
        started = time.perf_counter()
        try:
            outcome = await super().accept(adapter_id, payload, raw_body=raw_body, content_type=content_type)
        except Exception:
            self.listener(adapter_id, "error", time.perf_counter() - started, None)
            raise
        self.listener(adapter_id, outcome.kind, time.perf_counter() - started, outcome)
        return outcome


def observe_attempts(engine: DeliveryEngine, listener: AttemptListener) -> None:
    """Add a listener to an engine, running lanes included.

    A Lane copies the engine's listeners when it starts, so `add_listener` after `start()` alone reaches no
    running lane; the lanes that lack the listener get it here (once, even if the engine learns to share its list).
    """
    engine.add_listener(listener)
    for lane in engine.lanes.values():
        if listener not in lane._listeners:
            lane._listeners = (*lane._listeners, listener)
