"""The dashboard at /ops: server-rendered pages (Chinese labels, inline CSS/SVG/JS), signed in by a token cookie."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from pydantic import ValidationError

from contracts.codetables import default_code_tables
from gateway.ops.access import OpsUser, Role
from gateway.ops.deps import SESSION_COOKIE, Service, SignedIn, client_of, presented_token, signed_in
from gateway.ops.errors import OpsError
from gateway.ops.links import decide
from gateway.ops.on_time import LIMIT_LABELS
from gateway.ops.replay import REASONS
from gateway.ops.review import pending_reviews, settle
from gateway.ops.schemas import QuarantineSearch, ReplayFilter, ReplayRequest, TicketSearch
from gateway.ops.service import OpsService
from gateway.ops.views import (
    ACTION_LABELS,
    CIRCUIT_LABELS,
    CREDENTIAL_LABELS,
    LINK_STATES,
    RISK_LABELS,
    SEVERITY_LABELS,
    STATE_LABELS,
    STATUS_LABELS,
    TOLD_LABELS,
    VERSION_LABELS,
    WITHDRAWAL_LABELS,
)
from gateway.tickets.links import LinkDecision
from gateway.tickets.review import Settlement
from gateway.tickets.risk import deadline_risk

TEMPLATES = Path(__file__).resolve().parent / "templates"
DEFAULT_REFRESH_SECONDS = 10
LATEST_TICKETS = 20  # shown on the search page before a search
MESSAGES = {
    **{f"not_replayed.{reason}": f"未重新投递：{zh}" for reason, (zh, _) in REASONS.items()},
    "replayed": "已重新投递", "replay_none": "没有可重新投递的死信（可能已被他人处理）",
    "retried_now": "已立即重试", "retry_none": "没有等待重试的投递（可能已发送或已被他人处理）",
    "remapped": "已重新映射并入库",
    "still_rejected": "仍无法映射：请先修正映射规则并重新加载配置",
    "returned": "按规则退回来源系统（退单），该件在隔离区记为已退单",
    "already_returned": "该隔离件此前已退单，未再次发送",
    "already_resolved": "该隔离件此前已处理", "forbidden": "当前角色无权执行此操作", "bad_form": "表单已过期，请重试",
    "login_failed": "令牌无效", "logged_out": "已退出",
    "remapped_review": "已重新映射并入库，受理范围待人工判定（尚未转报）",
    "review_accepted": "已判定受理：工单已转报全国平台并按规则分送",
    "review_returned": "已判定退回：退单已发回来源系统",
    "not_under_review": "该工单已不在待判定状态（可能已被他人处理）",
    "review_invalid": "判定未提交：理由至少 2 个字；退回须填写主管部门",
    "link_confirmed": "已确认为重复工单（两件工单均已记录）", "link_dismissed": "已排除重复关联（两件工单均已记录）",
    "link_invalid": "未提交：说明不超过 300 字", "link_not_found": "该工单没有这条关联",
}
# The not-accepted reasons (不予受理原因) an operator returning a held ticket chooses from, from the code table.
RETURN_REASONS = {e.code: e.label for e in default_code_tables()["not_accepted_reason"].roots()}
BUSINESS_TYPES = {"01": "咨询", "02": "投诉", "03": "举报"}
URGENCY = {"1": "特急", "2": "加急", "3": "平急", "4": "常规"}


def _age(seconds: float) -> str:
    if seconds <= 0:
        return "—"
    if seconds < 60:
        return f"{seconds:.0f} 秒"
    if seconds < 3600:
        return f"{seconds / 60:.0f} 分钟"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} 小时"
    return f"{seconds / 86400:.1f} 天"


def _environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["age"] = _age
    env.filters["china"] = _china_time
    env.globals.update(CREDENTIAL_LABELS=CREDENTIAL_LABELS, STATE_LABELS=STATE_LABELS, STATUS_LABELS=STATUS_LABELS,
                       CIRCUIT_LABELS=CIRCUIT_LABELS, SEVERITY_LABELS=SEVERITY_LABELS,
                       VERSION_LABELS=VERSION_LABELS, WITHDRAWAL_LABELS=WITHDRAWAL_LABELS,
                       RISK_LABELS=RISK_LABELS, ACTION_LABELS=ACTION_LABELS, BUSINESS_TYPES=BUSINESS_TYPES,
                       URGENCY=URGENCY, RETURN_REASONS=RETURN_REASONS, LIMIT_LABELS=LIMIT_LABELS,
                       LINK_STATES=LINK_STATES, TOLD_LABELS=TOLD_LABELS, Role=Role)
    return env


def _china_time(at: datetime | str | None) -> str:
    """A time as China time (the ticket JSON's are ISO strings, the store's datetimes; either may be UTC)."""
    if not at:
        return "—"
    moment = datetime.fromisoformat(at) if isinstance(at, str) else at
    return str(moment.astimezone(_china()).strftime("%Y-%m-%d %H:%M:%S"))


def _china() -> Any:
    from gateway.tickets.deadlines import CHINA_TZ

    return CHINA_TZ


def csrf_token(service: OpsService, token: str) -> str:
    """Ties a form to the signed-in token and this process; a cross-site form cannot know it."""
    return hmac.new(service.csrf_key, hashlib.sha256(token.encode("utf-8")).digest(), hashlib.sha256).hexdigest()


class Page:
    """Renders the dashboard's templates for one request's user."""

    def __init__(self) -> None:
        self.env = _environment()

    def render(self, service: OpsService, name: str, request: Request, user: OpsUser | None, status: int = 200,
               **context: Any) -> HTMLResponse:
        token = presented_token(request, cookie=True)
        message = MESSAGES.get(request.query_params.get("msg", ""))
        html = self.env.get_template(name).render(
            user=user, csrf=csrf_token(service, token) if token and user else "", message=message,
            region=service.runtime.settings.region.name, may_operate=bool(user and user.may(Role.OPERATOR)),
            restart_pending=service.restart_pending if user else [],
            **context)
        return HTMLResponse(html, status_code=status)


def _back(path: str, msg: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'msg': msg})}", status_code=303)


async def _check_form(service: OpsService, request: Request, csrf: str, required: Role) -> OpsUser | str:
    """The user behind a dashboard form, or the message key of why not."""
    user = await signed_in(request)
    token = presented_token(request, cookie=True)
    if user is None or token is None:
        return "login_failed"
    if not hmac.compare_digest(csrf, csrf_token(service, token)):
        return "bad_form"
    if not user.may(required):
        return "forbidden"
    return user


page = Page()


def _login_redirect(request: Request) -> RedirectResponse:
    return RedirectResponse(f"/ops/login?next={quote(request.url.path)}", status_code=303)


def dashboard_router() -> APIRouter:
    router = APIRouter(prefix="/ops", include_in_schema=False)

    @router.get("", response_class=HTMLResponse)
    async def dashboard(request: Request, user: SignedIn, service: Service) -> Response:
        if user is None:
            return _login_redirect(request)
        refresh = _refresh(request)
        board = await service.dashboard(user, hours=_hours(request))
        return page.render(service, "dashboard.html", request, user, board=board, refresh=refresh,
                           hours=_hours(request))

    @router.get("/live", response_class=HTMLResponse)
    async def live(request: Request, user: SignedIn, service: Service) -> Response:
        """The live part of the dashboard, fetched by the page every few seconds."""
        if user is None:
            return Response(status_code=401)
        board = await service.dashboard(user, hours=_hours(request))
        return page.render(service, "_live.html", request, user, board=board)

    @router.get("/login", response_class=HTMLResponse)
    async def login_form(request: Request, service: Service) -> Response:
        return page.render(service, "login.html", request, None, next=_safe_next(request.query_params.get("next")))

    @router.post("/login")
    async def login(request: Request, service: Service, token: Annotated[str, Form()] = "",
                    next_path: Annotated[str, Form(alias="next")] = "/ops") -> Response:
        try:
            user = await asyncio.to_thread(service.authenticate, token.strip(), client_of(request))
        except OpsError as refused:  # too many failed tries from this address
            refusal = page.render(service, "login.html", request, None, status=refused.status,
                                  next=_safe_next(next_path),
                                  error=f"登录失败次数过多，请 {refused.retry_after} 秒后再试")
            refusal.headers["Retry-After"] = str(refused.retry_after)
            return refusal
        if user is None:
            return page.render(service, "login.html", request, None, status=401, next=_safe_next(next_path),
                               error=MESSAGES["login_failed"])
        response = RedirectResponse(_safe_next(next_path), status_code=303)
        response.set_cookie(SESSION_COOKIE, token.strip(), httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https", max_age=12 * 3600)
        return response

    @router.post("/logout")
    async def logout() -> Response:
        response = _back("/ops/login", "logged_out")
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @router.get("/tickets", response_class=HTMLResponse)
    async def tickets(request: Request, user: SignedIn, service: Service) -> Response:
        if user is None:
            return _login_redirect(request)
        params = {k: v for k, v in request.query_params.items() if v.strip() and k != "msg"}
        errors: list[dict[str, Any]] = []
        results = None
        if params:
            try:
                search = TicketSearch.model_validate(params)
            except ValidationError as err:
                errors = [{"field": ".".join(str(p) for p in e["loc"]) or "(查询)", "message": e["msg"]}
                          for e in err.errors(include_url=False)]
            else:
                results = await service.search(search, user)
        else:  # before any search: the newest tickets, so the page is never empty on arrival
            results = await service.search(TicketSearch(limit=LATEST_TICKETS), user)
        return page.render(service, "tickets.html", request, user, params=params, results=results, errors=errors,
                           latest=not params, statuses=STATUS_LABELS, status=422 if errors else 200)

    @router.get("/tickets/{ticket_id}", response_class=HTMLResponse)
    async def ticket(ticket_id: str, request: Request, user: SignedIn, service: Service) -> Response:
        if user is None:
            return _login_redirect(request)
        try:
            detail = await service.ticket_detail(ticket_id, user)
        except OpsError as err:
            return page.render(service, "error.html", request, user, status=err.status, error=err.message)
        stored = await service.store.get_ticket(ticket_id)
        risk = deadline_risk(stored, service.clock(), service.runtime.components.calendar) if stored else None
        return page.render(service, "ticket.html", request, user, detail=detail, t=detail.ticket, risk=risk,
                           under_review=stored is not None and stored.held_for_review())

    @router.get("/reviews", response_class=HTMLResponse)
    async def reviews(request: Request, user: SignedIn, service: Service) -> Response:
        if user is None:
            return _login_redirect(request)
        return page.render(service, "reviews.html", request, user, reviews=await pending_reviews(service, user))

    @router.post("/tickets/{ticket_id}/jurisdiction")
    async def settle_review(ticket_id: str, request: Request, service: Service, csrf: Annotated[str, Form()] = "",
                            outcome: Annotated[str, Form()] = "", reason: Annotated[str, Form()] = "",
                            competent_authority: Annotated[str, Form()] = "",
                            return_reason_code: Annotated[str, Form()] = "1") -> Response:
        """An operator's accept / return of a held ticket: the same settlement, role check and audit as the API's."""
        target = f"/ops/tickets/{quote(ticket_id)}"
        checked = await _check_form(service, request, csrf, Role.OPERATOR)
        if isinstance(checked, str):
            return _back(target, checked)
        try:
            settlement = Settlement.model_validate({
                "outcome": outcome, "reason": reason.strip(), "return_reason_code": return_reason_code,
                "competent_authority": competent_authority.strip() or None})
        except ValidationError:
            return _back(target, "review_invalid")
        try:
            await settle(service, ticket_id, settlement, checked)
        except OpsError as err:
            if err.status == 409:
                return _back(target, "not_under_review")
            return page.render(service, "error.html", request, checked, status=err.status, error=err.message)
        return _back(target, "review_accepted" if settlement.outcome == "accept" else "review_returned")

    @router.post("/tickets/{ticket_id}/links/{linked_ticket_id}")
    async def decide_link(ticket_id: str, linked_ticket_id: str, request: Request, service: Service,
                          csrf: Annotated[str, Form()] = "", decision: Annotated[str, Form()] = "",
                          note: Annotated[str, Form()] = "") -> Response:
        """An operator's confirm / dismiss of a duplicate link: the same decision, role check and audit as the API's."""
        target = f"/ops/tickets/{quote(ticket_id)}"
        checked = await _check_form(service, request, csrf, Role.OPERATOR)
        if isinstance(checked, str):
            return _back(target, checked)
        try:
            chosen = LinkDecision.model_validate({"decision": decision, "note": note.strip() or None})
        except ValidationError:
            return _back(target, "link_invalid")
        try:
            await decide(service, ticket_id, linked_ticket_id, chosen, checked)
        except OpsError as err:
            if err.status == 404:
                return _back(target, "link_not_found")
            return page.render(service, "error.html", request, checked, status=err.status, error=err.message)
        return _back(target, "link_confirmed" if chosen.decision == "confirm" else "link_dismissed")

    @router.post("/deliveries/{delivery_id}/replay")
    async def replay_one(delivery_id: str, request: Request, service: Service, csrf: Annotated[str, Form()] = "",
                         back: Annotated[str, Form()] = "/ops") -> Response:
        checked = await _check_form(service, request, csrf, Role.OPERATOR)
        target = _safe_next(back)
        if isinstance(checked, str):
            return _back(target, checked)
        try:
            result = await service.replay(ReplayRequest(delivery_ids=[delivery_id]), checked)
        except OpsError:
            return _back(target, "replay_none")
        if not result.count and result.not_replayed:  # say why, as the API does
            return _back(target, f"not_replayed.{result.not_replayed[0].reason}")
        return _back(target, "replayed" if result.count else "replay_none")

    @router.post("/destinations/{destination}/replay")
    async def replay_lane(destination: str, request: Request, service: Service,
                          csrf: Annotated[str, Form()] = "") -> Response:
        checked = await _check_form(service, request, csrf, Role.OPERATOR)
        if isinstance(checked, str):
            return _back("/ops", checked)
        result = await service.replay(
            ReplayRequest(filter=ReplayFilter(destination=destination, limit=1000)), checked)
        return _back("/ops", "replayed" if result.count else "replay_none")

    @router.post("/destinations/{destination}/retry-now")
    async def retry_lane_now(destination: str, request: Request, service: Service,
                             csrf: Annotated[str, Form()] = "") -> Response:
        checked = await _check_form(service, request, csrf, Role.OPERATOR)
        if isinstance(checked, str):
            return _back("/ops", checked)
        result = await service.replay(
            ReplayRequest(filter=ReplayFilter(state="retrying", destination=destination, limit=1000)), checked)
        return _back("/ops", "retried_now" if result.count else "retry_none")

    @router.get("/quarantine", response_class=HTMLResponse)
    async def quarantine(request: Request, user: SignedIn, service: Service) -> Response:
        if user is None:
            return _login_redirect(request)
        items = await service.quarantine(QuarantineSearch(include_resolved=True), user)
        return page.render(service, "quarantine.html", request, user, items=items)

    @router.post("/quarantine/{quarantine_id}/remap")
    async def remap(quarantine_id: str, request: Request, service: Service,
                    csrf: Annotated[str, Form()] = "") -> Response:
        checked = await _check_form(service, request, csrf, Role.OPERATOR)
        if isinstance(checked, str):
            return _back("/ops/quarantine", checked)
        try:
            result = await service.remap(quarantine_id, checked)
        except OpsError as err:
            return page.render(service, "error.html", request, checked, status=err.status, error=err.message)
        if result.ticket_id and result.outcome in ("created", "repeat", "updated", "review"):
            return _back(f"/ops/tickets/{result.ticket_id}",
                         "remapped_review" if result.outcome == "review" else "remapped")
        return _back("/ops/quarantine", result.outcome)

    return router


def _safe_next(value: str | None) -> str:
    """Only a path of this dashboard: never an open redirect."""
    if value and value.startswith("/ops") and "//" not in value and "\\" not in value:
        return value
    return "/ops"


def _refresh(request: Request) -> int:
    try:
        return max(2, min(int(request.query_params.get("refresh", DEFAULT_REFRESH_SECONDS)), 300))
    except ValueError:
        return DEFAULT_REFRESH_SECONDS


def _hours(request: Request) -> float:
    try:
        return max(1.0, min(float(request.query_params.get("hours", 6)), 48.0))
    except ValueError:
        return 6.0
