"""Fault injection in front of the national API: errors, 429s, latency, timeouts, dropped connections, outages."""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from typing import Literal

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from simulators.national.config import FaultPlan, FaultUpdate
from simulators.national.registry import NationalState

FaultKind = Literal["outage", "drop", "timeout", "rate_limit", "error"]
FAULTED_PREFIX = "/api/"  # the national API; /sim/* (the control API) is never faulted


class FaultController:
    """The current fault plan and the seeded draw that picks a request's fault (one draw per request)."""

    def __init__(self, plan: FaultPlan, state: NationalState, seed: int | None) -> None:
        self.plan = plan
        self.state = state
        self.seed = seed
        self._rng = random.Random(seed)

    def update(self, change: FaultUpdate) -> FaultPlan:
        """Apply the fields given; raises pydantic.ValidationError when the result is not a valid plan."""
        given = change.model_dump(exclude_unset=True)
        seed = given.pop("seed", None)
        outage_seconds = given.pop("outage_seconds", None)
        if outage_seconds is not None:
            given["outage_until"] = time.time() + outage_seconds
        self.plan = FaultPlan.model_validate(self.plan.model_dump() | given)
        if "seed" in change.model_fields_set:
            self.seed = seed
            self._rng = random.Random(seed)
        return self.plan

    def reset(self) -> FaultPlan:
        self.plan = FaultPlan()
        return self.plan

    def describe(self) -> dict[str, object]:
        body: dict[str, object] = self.plan.model_dump(mode="json")
        body["seed"] = self.seed
        body["outage_remaining_seconds"] = max(0.0, round((self.plan.outage_until or 0) - time.time(), 3))
        return body

    def draw(self) -> FaultKind | None:
        """The fault for the next request: an outage wins; otherwise one uniform draw split by the ratios."""
        roll = self._rng.random()  # always drawn, so a seed gives the same sequence whatever the plan
        plan = self.plan
        if plan.outage_until is not None and time.time() < plan.outage_until:
            return "outage"
        shares: tuple[tuple[FaultKind, float], ...] = (
            ("drop", plan.drop_ratio),
            ("timeout", plan.timeout_ratio),
            ("rate_limit", plan.rate_limit_ratio),
            ("error", plan.error_ratio),
        )
        edge = 0.0
        for kind, ratio in shares:
            edge += ratio
            if roll < edge:
                return kind
        return None


def _json_error(status: int, rule: str, message: str, headers: dict[str, str] | None = None) -> list[Message]:
    body = json.dumps({"errors": [{"field": "(request)", "rule": rule, "message": message}]},
                      ensure_ascii=False).encode("utf-8")
    raw_headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return [{"type": "http.response.start", "status": status, "headers": raw_headers},
            {"type": "http.response.body", "body": body, "more_body": False}]


async def _until_disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _replay(send: Send, messages: list[Message]) -> None:
    for message in messages:
        await send(message)


class ConnectionDroppedByFault(Exception):
    """Raised to make a server that offers no transport drop the connection mid-response."""


async def _drop_connection(send: Send) -> None:
    """Close the TCP connection with no response at all.

    uvicorn's `send` is a bound method of its request cycle, which holds the asyncio transport; closing it
    is what a crashed upstream or a middlebox looks like to the client (EOF before any status line).
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if isinstance(transport, asyncio.BaseTransport):
        transport.close()
        for _ in range(20):  # let connection_lost run, so the server does not try to answer with a 500
            if getattr(cycle, "disconnected", True):
                break
            await asyncio.sleep(0)
        return
    # Another server: promise a body, then fail; the server has to cut the connection.
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1024")]})
    raise ConnectionDroppedByFault("connection dropped by fault injection")


class FaultInjector:
    """ASGI wrapper around the simulator: must be outermost so it receives the server's own `send`."""

    def __init__(self, app: ASGIApp, controller: FaultController) -> None:
        self.app = app
        self.controller = controller

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(FAULTED_PREFIX):
            await self.app(scope, receive, send)
            return
        controller, plan = self.controller, self.controller.plan
        kind = controller.draw()
        if kind is not None:
            controller.state.count_fault(kind)
        if plan.latency_ms:
            controller.state.count_fault("latency")
            await asyncio.sleep(plan.latency_ms / 1000)
        if kind == "outage":
            remaining = max(1, math.ceil((plan.outage_until or 0) - time.time()))
            await _replay(send, _json_error(503, "outage", "the national platform is down for maintenance",
                                            {"Retry-After": str(remaining), "X-Sim-Fault": "outage"}))
        elif kind == "rate_limit":
            await _replay(send, _json_error(429, "rate_limited", "too many requests",
                                            {"Retry-After": str(plan.retry_after_seconds),
                                             "X-Sim-Fault": "rate_limit"}))
        elif kind == "error":
            await _replay(send, _json_error(plan.error_status, "injected_error",
                                            f"simulated HTTP {plan.error_status}", {"X-Sim-Fault": "error"}))
        elif kind in ("timeout", "drop"):
            await self._lose_response(kind, plan, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _lose_response(self, kind: FaultKind, plan: FaultPlan, scope: Scope, receive: Receive,
                             send: Send) -> None:
        captured: list[Message] = []

        async def capture(message: Message) -> None:
            captured.append(message)

        if plan.lost_responses_processed:
            await self.app(scope, receive, capture)
        if kind == "drop":
            await _drop_connection(send)
            return
        try:
            # Hold the answer past any sensible client timeout; stop as soon as the client gives up.
            await asyncio.wait_for(_until_disconnected(receive), timeout=plan.timeout_seconds)
        except TimeoutError:
            await _replay(send, captured or _json_error(504, "injected_timeout", "simulated timeout",
                                                        {"X-Sim-Fault": "timeout"}))
