"""Delivery: one lane per destination, retry decisions, circuit breaker, rate limit and the engine."""

from gateway.delivery.breaker import BreakerState, CircuitBreaker
from gateway.delivery.config import DeliveryConfig, DeliveryConfigError, EngineSettings, load_delivery_config
from gateway.delivery.engine import DeliveryEngine, LaneStatus
from gateway.delivery.policy import Decision, DecisionKind, decide
from gateway.delivery.ratelimit import TokenBucket

__all__ = [
    "BreakerState",
    "CircuitBreaker",
    "Decision",
    "DecisionKind",
    "DeliveryConfig",
    "DeliveryConfigError",
    "DeliveryEngine",
    "EngineSettings",
    "LaneStatus",
    "TokenBucket",
    "decide",
    "load_delivery_config",
]
