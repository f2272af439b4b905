"""What the partner and national routes need, built once at start-up and kept on app.state."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from adapters.config import AdapterConfig, MissingCredential
from adapters.wire.webhooks import WebhookVerifier
from adapters.wire.wsse import UsernameTokenPolicy
from contracts.errors import FieldError

log = logging.getLogger(__name__)


class IntakeOutcomeView(Protocol):
    """What the route reads of an intake outcome (gateway.intake.IntakeOutcome)."""

    @property
    def kind(self) -> str: ...  # "created" | "repeat" | "updated" | "review" | "quarantined" | "returned"

    @property
    def follow_up(self) -> str | None: ...  # what a follow-up of a known ticket said (new_version, urge, …)

    @property
    def ticket_id(self) -> str | None: ...

    @property
    def quarantine_id(self) -> str | None: ...

    @property
    def errors(self) -> Sequence[FieldError]: ...

    @property
    def returned(self) -> Any: ...  # mapping.Returned (reason_code, reason, source_ticket_no) for a 退单


class TicketIntake(Protocol):
    """Maps, stores and enqueues one partner ticket in one step (gateway.intake.IntakeService)."""

    async def accept(self, adapter_id: str, payload: object, *, raw_body: bytes,
                     content_type: str) -> IntakeOutcomeView: ...


@dataclass(frozen=True)
class PushCredentials:
    """One push adapter's inbound credentials, read from the environment once at start-up."""

    api_key_digest: bytes | None
    hmac_secret: bytes | None
    hmac_tolerance_seconds: int


@dataclass
class InboundContext:
    """What the inbound route needs; the gateway builds it at start-up and puts it on app.state.inbound."""

    adapters: Mapping[str, AdapterConfig]
    intake: TicketIntake
    max_body_bytes: int
    clock: Callable[[], float] = time.time
    credentials: dict[str, PushCredentials] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)  # adapter id → why its credentials are unusable

    @classmethod
    def build(cls, adapters: Mapping[str, AdapterConfig], intake: TicketIntake, max_body_bytes: int, *,
              strict: bool = True, clock: Callable[[], float] = time.time) -> InboundContext:
        """Read every push adapter's credentials now. `strict`: MissingCredential naming each unset variable
        (or missing mapping spec); otherwise those adapters answer 503 and the problem is logged."""
        context = cls(adapters=adapters, intake=intake, max_body_bytes=max_body_bytes, clock=clock)
        for adapter_id, config in adapters.items():
            if not (config.enabled and config.push):
                continue
            try:
                context.credentials[adapter_id] = PushCredentials(
                    api_key_digest=config.auth.api_key_digest(),
                    hmac_secret=config.auth.hmac_secret(),
                    hmac_tolerance_seconds=config.auth.hmac_tolerance_seconds,
                )
            except MissingCredential as err:
                context.missing[adapter_id] = str(err)
                continue
            knows = getattr(intake, "knows", None)  # IntakeService.knows: a mapping spec is loaded for it
            if callable(knows) and not knows(adapter_id):
                context.missing[adapter_id] = "intake has no mapping spec for it"
        if context.missing:
            problems = [f"adapter {a}: {why}" for a, why in sorted(context.missing.items())]
            if strict:
                raise MissingCredential("; ".join(problems))
            for problem in problems:
                log.error("push adapter cannot take pushes; it answers 503", extra={"problem": problem})
        return context


# remember_nonce(scope, nonce, ttl_seconds) -> True the first time (the store's Coordination.remember_nonce).
NonceStore = Callable[[str, str, float], Awaitable[bool]]


@runtime_checkable
class SoapPushSource(Protocol):
    """What the SOAP route needs of an adapter (adapters.soap.SoapAdapter): whether it takes pushes, from whom."""

    @property
    def accepts_soap_push(self) -> bool: ...

    def inbound_policy(self) -> UsernameTokenPolicy | None: ...


@dataclass
class SoapContext:
    """What the SOAP route needs; the gateway builds it at start-up and puts it on app.state.soap."""

    intake: TicketIntake
    remember_nonce: NonceStore
    max_body_bytes: int
    policies: dict[str, UsernameTokenPolicy] = field(default_factory=dict)  # adapter id → who may push
    missing: dict[str, str] = field(default_factory=dict)  # adapter id → why its credentials are unusable
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @classmethod
    def build(cls, adapters: Mapping[str, object], intake: TicketIntake, remember_nonce: NonceStore,
              max_body_bytes: int, *, strict: bool = True) -> SoapContext:
        """Read the WS-Security password of every adapter that takes SOAP pushes, now.

        `adapters` are built adapters by id (any without `accepts_soap_push` is skipped); `remember_nonce`
        is usually `store.remember_nonce`. `strict`: MissingCredential naming each unset variable;
        otherwise those adapters answer a soap:Server Fault and the problem is logged.
        """
        context = cls(intake=intake, remember_nonce=remember_nonce, max_body_bytes=max_body_bytes)
        for adapter_id, adapter in adapters.items():
            if not isinstance(adapter, SoapPushSource) or not adapter.accepts_soap_push:
                continue
            try:
                policy = adapter.inbound_policy()
            except MissingCredential as err:
                context.missing[adapter_id] = str(err)
                continue
            if policy is not None:
                context.policies[adapter_id] = policy
        if context.missing:
            problems = [f"adapter {a}: {why}" for a, why in sorted(context.missing.items())]
            if strict:
                raise MissingCredential("; ".join(problems))
            for problem in problems:
                log.error("SOAP push adapter has no usable credentials; it answers a Server fault",
                          extra={"problem": problem})
        return context

    def takes_pushes(self, adapter_id: str) -> bool:
        return adapter_id in self.policies or adapter_id in self.missing


@dataclass(frozen=True)
class NationalContext:
    """What the national status route needs besides the status service: the shared secrets and the body limit."""

    verifier: WebhookVerifier
    max_body_bytes: int
