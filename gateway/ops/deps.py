"""The ops routes' dependencies: the ops service on app.state and the signed-in user, as `Annotated[…, Depends]`."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request

from gateway.ops.access import OpsUser, Role
from gateway.ops.errors import OpsError, require
from gateway.ops.service import OpsService

SESSION_COOKIE = "hig_ops_token"


def ops_service(request: Request) -> OpsService:
    service: OpsService = request.app.state.ops
    return service


def presented_token(request: Request, *, cookie: bool) -> str | None:
    """The bearer token of the Authorization header; else, where allowed, the dashboard's session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE) if cookie else None


def client_of(request: Request) -> str:
    """The client's address, as uvicorn saw it (behind a trusted proxy: the forwarded one)."""
    return request.client.host if request.client is not None else "unknown"


def authenticated(request: Request, required: Role, *, cookie: bool) -> OpsUser:
    user = ops_service(request).authenticate(presented_token(request, cookie=cookie), client_of(request))
    if user is None:
        raise OpsError(401, "unauthenticated", "present an ops token: Authorization: Bearer <token>",
                       zh="请出示运维令牌：Authorization: Bearer <令牌>", field="Authorization")
    require(user, required, f"{request.method} {request.url.path}")
    request.state.ops_user = user
    return user


# Sync on purpose: FastAPI runs them on its thread pool, and checking a salted hash takes milliseconds of CPU.
# The API takes the dashboard's cookie for reading only; a change needs the header (no cross-site form can set it).
def viewer(request: Request) -> OpsUser:
    return authenticated(request, Role.VIEWER, cookie=request.method == "GET")


def operator(request: Request) -> OpsUser:
    return authenticated(request, Role.OPERATOR, cookie=False)


def admin(request: Request) -> OpsUser:
    return authenticated(request, Role.ADMIN, cookie=request.method == "GET")


Viewer = Annotated[OpsUser, Depends(viewer)]
Operator = Annotated[OpsUser, Depends(operator)]
Admin = Annotated[OpsUser, Depends(admin)]
Service = Annotated[OpsService, Depends(ops_service)]


async def signed_in(request: Request) -> OpsUser | None:
    """The dashboard's user, by the session cookie; None when there is none, or a throttled client presents an
    unknown one. A token not seen before is checked on a worker thread (a salted hash per user), never on the
    event loop."""
    service = ops_service(request)
    token = presented_token(request, cookie=True)
    if not token:
        return None
    known = service.auth.recognised(token)
    if known is not None:
        return known
    try:
        return await asyncio.to_thread(service.authenticate, token, client_of(request))
    except OpsError:
        return None


SignedIn = Annotated[OpsUser | None, Depends(signed_in)]
