"""Delivery: lanes per destination, retry policy, circuit breaker, rate limit, senders and the engine."""

from gateway.delivery.breaker import BreakerConfig, BreakerState, CircuitBreaker
from gateway.delivery.config import (
    DeliveryConfig,
    DeliveryConfigError,
    DestinationConfig,
    EngineSettings,
    TimeoutConfig,
    load_delivery_config,
)
from gateway.delivery.engine import DeliveryEngine, LaneStatus
from gateway.delivery.policy import Decision, DecisionKind, RetryPolicy, decide
from gateway.delivery.ratelimit import RateLimitConfig, TokenBucket
from gateway.delivery.results import ErrorClass, SendResult
from gateway.delivery.senders import HttpSender, Sender, build_sender, register_sender_kind

__all__ = [
    "BreakerConfig",
    "BreakerState",
    "CircuitBreaker",
    "Decision",
    "DecisionKind",
    "DeliveryConfig",
    "DeliveryConfigError",
    "DeliveryEngine",
    "DestinationConfig",
    "EngineSettings",
    "ErrorClass",
    "HttpSender",
    "LaneStatus",
    "RateLimitConfig",
    "RetryPolicy",
    "SendResult",
    "Sender",
    "TimeoutConfig",
    "TokenBucket",
    "build_sender",
    "decide",
    "load_delivery_config",
    "register_sender_kind",
]
