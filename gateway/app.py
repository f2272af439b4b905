"""The FastAPI application: health, readiness and (as issues land) intake, status and ops routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from contracts.codetables import default_code_tables
from contracts.ticket import SCHEMA_VERSION
from gateway.config import GatewaySettings

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings) -> FastAPI:
    """Build the gateway for one configuration; start-up loads and checks what it needs once."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tables = default_code_tables()
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        app.state.ready = True
        log.info("gateway started", extra={"region": settings.region.code, "code_tables": len(tables)})
        yield
        app.state.ready = False

    app = FastAPI(
        title="Hotline Interop Gateway",
        version="0.1.0",
        summary="Connects 12345 hotlines and enforcement, credit and emergency systems to the national 12315 platform.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.ready = False

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], response_model=None)
    async def readyz() -> JSONResponse:
        """The gateway has loaded its configuration and can take tickets."""
        ready = bool(app.state.ready)
        body = {"status": "ready" if ready else "starting", "schema_version": SCHEMA_VERSION,
                "region": settings.region.code, "store": settings.store.kind}
        return JSONResponse(body, status_code=200 if ready else 503)

    return app
