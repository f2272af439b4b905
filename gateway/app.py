"""The FastAPI application: partner intake (REST and SOAP), national status intake, ops, metrics, health."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope

from adapters.loading import load_adapters
from adapters.secrets import ensure_demo_credentials
from contracts.codetables import default_code_tables
from contracts.ticket import SCHEMA_VERSION
from gateway.config import GatewaySettings
from gateway.errors import GatewayError, StartupRefused
from gateway.http.contexts import InboundContext, NationalContext, SoapContext
from gateway.http.deps import GatewayStore, Ready, Settings
from gateway.http.fast_path import PushFastPath
from gateway.http.inbound import INBOUND_PATH, INBOUND_PUSH, document_canonical_pushes, inbound_router
from gateway.http.limits import BodyLimitMiddleware, framework_refusal, refusal_response
from gateway.http.national import NATIONAL_STATUS_PATH, national_status_router
from gateway.http.soap import SOAP_PUSH, soap_router
from gateway.ops.api import metrics_router, ops_api_router
from gateway.ops.dashboard import dashboard_router
from gateway.ops.service import OpsService
from gateway.runtime import Runtime
from gateway.store import Store

log = logging.getLogger(__name__)


def allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route of `app` takes on the request's path (HEAD with GET, as Starlette serves it)."""
    methods: set[str] = set()
    for route in app.router.routes:
        if isinstance(route, BaseRoute) and route.matches({**scope, "method": "GET"})[0] is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


async def store_health(store: Store, within: float) -> dict[str, object]:
    """The store's health within `within` seconds; a store that does not answer in time is not ready."""
    try:
        async with asyncio.timeout(within):
            return await store.health()
    except TimeoutError:
        return {"store": type(store).__name__, "reachable": False, "writable": False,
                "warnings": [f"the store did not answer within {within:g} s"]}


# Peers served beside the gateway for as long as it runs (the demo's simulators, wired in main.py).
PeerStarter = Callable[[GatewaySettings, Runtime], AbstractAsyncContextManager[None]]


async def warm_up(runtime: Runtime) -> None:
    """What intake keeps in memory read before the port opens (SQLite's link index: 5.6 s at a million tickets),
    not at the first push, which would wait for it; should the read fail, the first look-up reads again."""
    try:
        await runtime.store.warm_up()
    except Exception:
        log.exception("the store could not warm up: the first intake reads what it needs")


def create_app(settings: GatewaySettings, *, runtime: Runtime | None = None,
               peers: PeerStarter | None = None) -> FastAPI:
    """Build the gateway for one configuration. Configuration is read and checked here, before serving.

    `peers`: started before the gateway's own workers when `demo.simulators` is set."""
    default_code_tables()  # loaded and checked once, at start-up
    if runtime is None:
        if settings.demo.simulators or settings.demo.generate_credentials:
            generated = ensure_demo_credentials(settings.resolved_data_dir,
                                                load_adapters(settings.resolve(settings.adapters_dir)))
            if generated:  # at every start, not only the first: a real partner's key would be refused
                log.warning("partner credentials generated for the demo, not from the environment",
                            extra={"variables": generated, "secrets_dir": str(settings.resolved_data_dir / "secrets")})
        runtime = Runtime.build(settings)
    if settings.demo.simulators and peers is None:
        log.warning("demo.simulators is set, but this process was started without the simulators: "
                    "start the gateway with `python main.py` to serve them")
    max_body = settings.server.max_body_bytes
    ops = OpsService.for_runtime(runtime)
    ops.install()  # before start: pollers and routes take the intake that feeds metrics

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if settings.demo.simulators and peers is not None:
                await stack.enter_async_context(peers(settings, runtime))
            try:
                await runtime.start(workers=settings.workers, pollers=settings.pollers)
            except (GatewayError, OSError) as err:  # the store unreachable or refusing: the reason, not a traceback
                reason = str(err).splitlines()[0] if str(err) else type(err).__name__
                log.error("the gateway cannot start", extra={"reason": reason, "error": type(err).__name__})
                await runtime.stop()  # whatever started before the refusal
                raise StartupRefused(reason) from None
            stack.push_async_callback(runtime.stop)
            await stack.enter_async_context(ops.running())  # attempt metrics, the chart's per-minute counts
            # Pushes reach the intake of the configuration in force through runtime.current_intake.
            app.state.inbound = InboundContext.build(runtime.components.adapter_configs, runtime.current_intake,
                                                     max_body, strict=False)
            app.state.soap = SoapContext.build(runtime.adapters, runtime.current_intake,
                                               runtime.store.remember_nonce, max_body, strict=False)
            if settings.links.enabled:
                await warm_up(runtime)
            app.state.ready = True
            log.info("gateway started", extra={"region": settings.region.code, "store": settings.store.kind,
                                               "adapters": sorted(runtime.adapters)})
            yield
            app.state.ready = False

    # Swagger UI (/docs) and ReDoc (/redoc) with their scripts served from the package, not a CDN: government
    # intranets have none.
    app = FastAPIOffline(
        title="Hotline Interop Gateway",
        version="0.1.0",
        summary="Connects 12345 hotlines and enforcement, credit and emergency systems to the national 12315 "
        "platform.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.ops = ops
    app.state.national = NationalContext(runtime.national_verifier(), max_body)
    app.state.ready = False
    app.include_router(inbound_router())
    app.include_router(soap_router())
    app.include_router(national_status_router())
    app.include_router(ops_api_router())
    app.include_router(dashboard_router())
    app.include_router(metrics_router())
    # Pushes are answered past FastAPI's routing; inside the body limit below, which gives their bodies a deadline.
    app.add_middleware(PushFastPath, routes=[INBOUND_PUSH, SOAP_PUSH])
    # Every other route (the ops API, the dashboard's forms) gets the same body limit as the partner routes,
    # and every route a deadline for its body.
    app.add_middleware(BodyLimitMiddleware, limit=max_body, timeout=settings.server.body_timeout_seconds,
                       exempt=(INBOUND_PATH.split("{", 1)[0], "/soap/", NATIONAL_STATUS_PATH), soap=("/soap/",))

    canonical_pushes = [i for i, c in runtime.components.adapter_configs.items() if c.enabled and c.push
                        and c.is_canonical]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            document_canonical_pushes(document, canonical_pushes)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.exception_handler(StarletteHTTPException)
    async def http_refusal(request: Request, err: StarletteHTTPException) -> Response:
        """FastAPI's own refusals as the gateway's (code, Chinese message, English beside it; `detail` kept as
        FastAPI says it); a 405 lists in Allow the methods of every route on the path (Starlette names only the
        first route that matched it: GET for /soap/{id}, whose POST is documented too)."""
        allow = allowed_methods(app, request.scope) if err.status_code == 405 else []
        refusal = framework_refusal(err.status_code, str(err.detail), dict(err.headers or {}), request.method,
                                    request.url.path, allow)
        return refusal_response(refusal, detail=err.detail)

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None,
             responses={503: {"description": "Starting, or the store cannot take a ticket now (`reason` says why)"}})
    async def readyz(ready: Ready, settings: Settings, store: GatewayStore) -> JSONResponse:
        """The gateway has loaded its configuration, opened its store, and the store can take a ticket now."""
        body: dict[str, object] = {"status": "ready" if ready else "starting", "schema_version": SCHEMA_VERSION,
                                   "region": settings.region.code, "store": settings.store.kind}
        if not ready:
            return JSONResponse(body, status_code=503)
        timeouts = settings.store.timeouts  # a health check connects, and reads and writes once each
        health = await store_health(store, timeouts.connect_seconds + 2 * timeouts.operation_seconds)
        body["store_health"] = health
        if not (health.get("reachable") and health.get("writable")):
            # A load balancer must stop sending pushes here: each would be answered 503.
            body["status"] = "store_unavailable"
            warnings = health.get("warnings")
            listed = [str(w) for w in warnings] if isinstance(warnings, list) else []
            body["reason"] = "; ".join(listed) or "the store cannot take writes"
            return JSONResponse(body, status_code=503)
        return JSONResponse(body)

    return app
