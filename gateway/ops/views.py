"""What ops pages and the API show: rows of the dashboard, a ticket's timeline, and their Chinese labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from adapters.secrets import CredentialSource
from contracts.delivery import AttemptOutcome, DeliveryReceipt, DeliveryState
from contracts.ticket import Ticket
from gateway.ops.chart import Chart
from gateway.ops.masking import mask_in_text
from gateway.ops.on_time import OnTimeReport
from gateway.ops.schemas import AuditView, BehindTicket, DeliveryDetail, TimelineEntry
from gateway.pollers import PollerStatus
from gateway.store.base import AlertRecord, AuditEntry
from gateway.tickets.deadlines import CHINA_TZ

CREDENTIAL_LABELS = {"environment": "环境变量", "generated": "自动生成（演示）", "to_generate": "待自动生成（演示）",
                     "missing": "缺失"}
STATE_LABELS = {"pending": "待发送", "in_flight": "发送中", "retrying": "重试中", "delivered": "已送达", "dead": "死信"}
STATUS_LABELS = {
    "RECEIVED": "已接收", "DISPATCHED": "已派单", "ACCEPTED": "已受理", "NOT_ACCEPTED": "不予受理",
    "MEDIATING": "调解中", "MEDIATED": "调解成功", "MEDIATION_TERMINATED": "终止调解", "FILED": "已立案",
    "NOT_FILED": "不予立案",
    "EXTENDED": "已延期", "RETURNED": "已退回", "TRANSFERRED_OUT": "已转出", "WITHDRAWN": "已撤回", "CLOSED": "已办结",
}
# A reporter notice a filing decision ended was ended by the decision's delivery to the ticket's sender (Art. 31).
TOLD_LABELS = {"FILED": "立案决定已送达来源系统", "NOT_FILED": "不予立案决定已送达来源系统"}
CIRCUIT_LABELS = {"closed": "正常", "open": "熔断", "half_open": "试探", "none": "—"}
ACTION_LABELS = {"replay": "重新投递", "replay.dry_run": "重新投递（预演）", "quarantine.remap": "隔离件重新映射",
                 "config.reload": "重新加载配置", "compact": "压缩已送达投递",
                 "jurisdiction.review": "受理范围人工判定", "ticket.raw": "查看原始报文",
                 "link.confirm": "确认重复工单关联", "link.dismiss": "排除重复工单关联"}
RISK_LABELS = {"overdue": "已逾期", "due_soon": "即将到期"}
SEVERITY_LABELS = {"critical": "严重", "warning": "警告", "info": "提示"}
LINK_STATES = {"linked": "待确认", "confirmed": "已确认重复", "dismissed": "已排除"}


@dataclass(frozen=True)
class LaneRow:
    destination: str
    pending: int
    in_flight: int
    retrying: int
    delivered: int
    dead: int
    oldest_waiting_s: float
    circuit: str  # closed / open / half_open / none (no breaker, or no worker in this process)

    @property
    def circuit_label(self) -> str:
        return CIRCUIT_LABELS.get(self.circuit, self.circuit)

    @property
    def undelivered(self) -> int:
        return self.pending + self.in_flight + self.retrying


@dataclass(frozen=True)
class AdapterRow:
    adapter_id: str
    description: str | None
    kind: str
    enabled: bool
    received: int  # stored tickets, payloads still in quarantine and payloads sent back (退单)
    mapped: int
    quarantined: int  # open: waiting for an operator
    quarantined_total: int
    returned: int  # sent back to the partner as 退单 (closed, kept with the reason)
    callback: LaneRow | None
    poller: PollerStatus | None
    credentials: dict[str, CredentialSource] = field(default_factory=dict)  # variable -> where its value comes from

    @property
    def credential_source(self) -> CredentialSource | None:
        """The adapter's credentials in one word: the worst of them (missing, then generated, then environment)."""
        for source in ("missing", "to_generate", "generated", "environment"):
            if source in self.credentials.values():
                return source
        return None


@dataclass(frozen=True)
class RiskRow:
    ticket_id: str
    source_ticket_no: str
    adapter_id: str
    status: str
    risk: Literal["overdue", "due_soon"]
    kind: str
    due_on: str
    handler: str | None



@dataclass(frozen=True)
class Dashboard:
    generated_at: datetime
    region: str
    adapters: list[AdapterRow]
    destinations: list[LaneRow]
    at_risk: list[RiskRow]
    overdue: int
    due_soon: int
    dead: list[DeliveryReceipt]
    chart: Chart
    on_time: OnTimeReport
    totals: dict[str, int] = field(default_factory=dict)
    alerts: list[AlertRecord] = field(default_factory=list)  # firing now, most recently updated first
    # The sender's echo: tickets whose partner has not heard their latest status for longer than behind_after_s.
    behind: list[BehindTicket] = field(default_factory=list)
    behind_count: int = 0
    behind_after_s: int = 0



_OUTSTANDING = (DeliveryState.PENDING, DeliveryState.RETRYING, DeliveryState.IN_FLIGHT)


def waits_for(receipt: DeliveryReceipt, of_ticket: Sequence[DeliveryReceipt]) -> str | None:
    """The ticket's earlier delivery to the same destination this waiting one goes after, if still outstanding
    (one ticket's deliveries to a lane go in the order they were enqueued)."""
    if receipt.state not in (DeliveryState.PENDING, DeliveryState.RETRYING):
        return None
    ahead = [r for r in of_ticket if r.destination == receipt.destination and r.state in _OUTSTANDING
             and r.created_at < receipt.created_at]
    return min(ahead, key=lambda r: r.created_at).delivery_id if ahead else None



def title_of(ticket: Ticket, masked: bool) -> str | None:
    text = ticket.registration.title or ticket.registration.content[:60]
    return mask_in_text(ticket, text) if masked else text


def audit_view(entry: AuditEntry) -> AuditView:
    return AuditView(entry_id=entry.entry_id, at=entry.at, actor=entry.actor, role=entry.role, action=entry.action,
                     outcome=entry.outcome, ticket_ids=list(entry.ticket_ids), detail=dict(entry.detail))



VERSION_LABELS = {"original": "首版", "new_version": "新版本", "supplement": "补充材料",
                  "stale": "迟到旧版本（未采用）"}
SCREEN_LABELS = {"return": "筛查为退单，更新待人工复核", "review": "筛查待定，更新待人工复核"}
WITHDRAWAL_LABELS = {"requested": "已转报，待全国平台答复", "accepted": "全国平台同意撤回",
                     "refused": "全国平台不同意撤回"}


def follow_up_entries(ticket: Ticket, masked: bool) -> list[TimelineEntry]:
    """The sender's follow-ups on the timeline: each later version, each urge (催办), the withdrawal (撤诉)."""
    def said(text: str | None) -> str | None:
        return (mask_in_text(ticket, text) if masked else text) if text else None

    updates = ticket.sender_updates
    entries = [TimelineEntry(at=v.received_at, kind="version", tone="warn" if v.held else "info",
                             label=f"来源{VERSION_LABELS[v.kind]} 第{v.version}版"
                                   + (f"（{SCREEN_LABELS[v.screened]}）" if v.held and v.screened in SCREEN_LABELS
                                      else ""),
                             detail=said(v.text) or ("变更：" + "、".join(v.changed) if v.changed else None))
               for v in updates.versions if v.kind != "original"]
    entries += [TimelineEntry(at=u.received_at, kind="urge", tone="warn", label="来源系统催办", detail=said(u.text))
                for u in updates.urges]
    w = updates.withdrawal
    if w is not None:
        entries.append(TimelineEntry(at=w.received_at, kind="withdrawal", tone="warn", label="来源系统申请撤诉",
                                     detail=" ".join(x for x in (WITHDRAWAL_LABELS[w.state], said(w.text),
                                                                 w.national_reason) if x)))
    return entries


def timeline(ticket: Ticket, deliveries: Sequence[DeliveryDetail], audit: Sequence[AuditEntry],
             masked: bool) -> list[TimelineEntry]:
    """What happened to a ticket, oldest first: receipt, storing, every attempt, every status, every ops action."""
    entries = [
        TimelineEntry(at=ticket.source.source_received_at, kind="received", label="来源系统受理",
                      detail=f"{ticket.source.source_system} {ticket.source.source_ticket_no}"),
        TimelineEntry(at=ticket.registration.registered_at, kind="registered", label="登记",
                      detail=ticket.routing.handler_org_name),
    ]
    if deliveries:
        first = min(d.delivery.created_at for d in deliveries)
        at_intake = sorted({d.delivery.destination for d in deliveries
                            if (d.delivery.created_at - first).total_seconds() < 1})
        entries.append(TimelineEntry(at=first, kind="stored", label="网关入库", tone="ok",
                                     detail="投递至 " + "、".join(at_intake)))
    for d in deliveries:
        r = d.delivery
        for a in d.attempts:
            ok = a.outcome is AttemptOutcome.SUCCESS
            code = a.status_code if a.status_code is not None else (a.error_class or "无响应")
            tone: Literal["ok", "warn", "bad"] = "ok" if ok else (
                "bad" if a.outcome is AttemptOutcome.PERMANENT else "warn")
            entries.append(TimelineEntry(at=a.started_at, kind="attempt", tone=tone,
                                         label=f"投递 {r.destination} 第{a.number}次：{'成功' if ok else '失败'}",
                                         detail=f"{code}，{a.duration_ms:.0f} ms"))
        if r.state is DeliveryState.DEAD:
            last = d.attempts[-1].started_at if d.attempts else r.created_at
            entries.append(TimelineEntry(at=last, kind="dead", label=f"投递 {r.destination} 转入死信", tone="bad",
                                         detail=r.last_error_class))
    for e in ticket.lifecycle.events:
        opinion = (mask_in_text(ticket, e.opinion) if masked else e.opinion) if e.opinion else None
        entries.append(TimelineEntry(
            at=e.at, kind="status", tone="ok",
            label=f"状态：{STATUS_LABELS.get(e.from_status.value, e.from_status.value)} → "
                  f"{STATUS_LABELS.get(e.to_status.value, e.to_status.value)}",
            detail=" ".join(x for x in (e.org, opinion) if x) or None))
    for rejected in ticket.lifecycle.rejected_events:
        entries.append(TimelineEntry(at=rejected.received_at, kind="rejected_event", tone="warn",
                                     label=f"拒收状态事件 {STATUS_LABELS.get(rejected.status.value, rejected.status)}",
                                     detail=rejected.reason))
    entries.extend(follow_up_entries(ticket, masked))
    for entry in audit:
        entries.append(TimelineEntry(at=entry.at, kind="audit", tone="info",
                                     label=f"运维操作：{ACTION_LABELS.get(entry.action, entry.action)}",
                                     detail=f"{entry.actor}（{entry.role}） {entry.outcome}"))
    entries.sort(key=lambda e: e.at)
    # China time throughout: the gateway keeps its own times in UTC, partners and the platform write +08:00.
    return [e.model_copy(update={"at": e.at.astimezone(CHINA_TZ)}) for e in entries]
