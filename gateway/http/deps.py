"""The routes' dependencies: what the gateway keeps on app.state, as `Annotated[…, Depends]` parameters.

Async because each only reads app.state: FastAPI runs a plain function on its thread pool."""

from __future__ import annotations

from typing import Annotated, TypeVar

from fastapi import Depends, Request

from gateway.config import GatewaySettings
from gateway.http.contexts import InboundContext, NationalContext, SoapContext
from gateway.store import Store
from gateway.tickets.status import StatusService

T = TypeVar("T")


async def gateway_settings(request: Request) -> GatewaySettings:
    settings: GatewaySettings = request.app.state.settings
    return settings


async def readiness(request: Request) -> bool:
    """Whether the lifespan has started the gateway (and not yet stopped it)."""
    return bool(request.app.state.ready)


async def gateway_store(request: Request) -> Store:
    store: Store = request.app.state.runtime.store
    return store


async def status_service(request: Request) -> StatusService:
    """The status service of the configuration in force (a reload replaces it)."""
    status: StatusService = request.app.state.runtime.status
    return status


def _context(request: Request, name: str, kind: type[T]) -> T:
    context = getattr(request.app.state, name, None)
    if not isinstance(context, kind):
        raise RuntimeError(f"app.state.{name} is not set: build a {kind.__name__} in the gateway's lifespan")
    return context


async def inbound_context(request: Request) -> InboundContext:
    return _context(request, "inbound", InboundContext)


async def soap_context(request: Request) -> SoapContext:
    return _context(request, "soap", SoapContext)


async def national_context(request: Request) -> NationalContext:
    return _context(request, "national", NationalContext)


Settings = Annotated[GatewaySettings, Depends(gateway_settings)]
Ready = Annotated[bool, Depends(readiness)]
GatewayStore = Annotated[Store, Depends(gateway_store)]
Status = Annotated[StatusService, Depends(status_service)]
Inbound = Annotated[InboundContext, Depends(inbound_context)]
Soap = Annotated[SoapContext, Depends(soap_context)]
National = Annotated[NationalContext, Depends(national_context)]
