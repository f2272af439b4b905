"""What an alert channel is sent: the changes of one round (fired, grew, resolved) as one message, in Chinese."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Literal

from gateway.alerts.config import DingTalkChannel, EmailChannel, WebhookChannel, WeComChannel
from gateway.store import AlertRecord
from gateway.tickets.deadlines import CHINA_TZ

Change = Literal["fired", "grew", "resolved"]
SEVERITY_LABELS = {"critical": "严重", "warning": "警告", "info": "提示"}
CHANGE_LABELS: dict[Change, str] = {"fired": "告警", "grew": "告警加重", "resolved": "已恢复"}
# What a resolution means, per rule: the alert's summary tells what was wrong, this what is now right.
RESOLUTIONS = {
    "dead_letters": "死信已处理完毕", "lane_waiting": "积压已送达", "sender_silent": "来源系统已收到最新状态",
    "breaker_open": "熔断已关闭，恢复投递",
    "poller_failing": "拉取已恢复正常", "quarantine_growing": "隔离件已降至阈值以下",
    "ticket_overdue": "逾期工单已处理完毕", "ticket_due_soon": "临期工单已处理完毕",
    "store_unreachable": "存储已恢复访问",
}
WEBHOOK_EVENT = "gateway.alerts"
WECOM_MARKDOWN_LIMIT = 4096  # bytes of UTF-8, the robot's limit for markdown content


@dataclass(frozen=True)
class AlertChange:
    """One alert and what happened to it since the channel last heard of it."""

    alert: AlertRecord
    change: Change


def china_time(at: datetime) -> str:
    return at.astimezone(CHINA_TZ).strftime("%Y-%m-%d %H:%M:%S")


def _lasted(alert: AlertRecord) -> str:
    end = alert.resolved_at or alert.updated_at
    minutes = max(int((end - alert.started_at).total_seconds() // 60), 0)
    return f"{minutes // 60} 小时 {minutes % 60} 分钟" if minutes >= 60 else f"{minutes} 分钟"


def title(region: str, changes: Sequence[AlertChange]) -> str:
    firing = sum(1 for c in changes if c.change != "resolved")
    resolved = len(changes) - firing
    parts = [f"{firing} 条告警"] if firing else []
    if resolved:
        parts.append(f"{resolved} 条已恢复")
    return f"{region} 12315 接口网关：{'，'.join(parts)}"


def _facts_line(alert: AlertRecord) -> str:
    parts = [f"开始 {china_time(alert.started_at)}"]
    if alert.resolved_at is not None:
        parts += [f"恢复 {china_time(alert.resolved_at)}", f"持续 {_lasted(alert)}", f"最高 {alert.peak}"]
    else:
        parts.append(f"数量 {alert.count}")
    parts.append(f"规则 {alert.rule}")
    if alert.details:
        parts.append("例如 " + "、".join(alert.details))
    return " · ".join(parts)


def resolution(alert: AlertRecord) -> str:
    return RESOLUTIONS.get(alert.rule, "条件已消失")


def markdown_lines(changes: Sequence[AlertChange]) -> list[str]:
    lines = []
    for c in changes:
        label = CHANGE_LABELS[c.change]
        head = (f"**【{label}】** {c.alert.summary} → {resolution(c.alert)}" if c.change == "resolved"
                else f"**【{SEVERITY_LABELS.get(c.alert.severity, c.alert.severity)}·{label}】** {c.alert.summary}")
        lines.append(f"{head}\n> {_facts_line(c.alert)}")
    return lines


def _fit(text: str, limit: int) -> str:
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[:limit - 12].decode("utf-8", "ignore") + "\n……（已截断）"


def wecom_body(region: str, changes: Sequence[AlertChange]) -> bytes:
    content = f"### {title(region, changes)}\n" + "\n".join(markdown_lines(changes))
    message = {"msgtype": "markdown", "markdown": {"content": _fit(content, WECOM_MARKDOWN_LIMIT)}}
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


def dingtalk_body(region: str, changes: Sequence[AlertChange]) -> bytes:
    heading = title(region, changes)
    text = f"### {heading}\n\n" + "\n\n".join(markdown_lines(changes))
    message = {"msgtype": "markdown", "markdown": {"title": heading, "text": text}}
    return json.dumps(message, ensure_ascii=False).encode("utf-8")


def webhook_body(region: str, changes: Sequence[AlertChange], now: datetime) -> bytes:
    """A Standard Webhooks payload: {type, timestamp, data}; times in UTC, ISO 8601."""
    def iso(at: datetime | None) -> str | None:
        return at.isoformat() if at is not None else None

    data = {"region": region, "changes": [{
        "change": c.change, "alert_id": c.alert.alert_id, "key": c.alert.key, "rule": c.alert.rule,
        "subject": c.alert.subject, "severity": c.alert.severity, "state": c.alert.state,
        "summary": c.alert.summary, "count": c.alert.count, "peak": c.alert.peak,
        "started_at": iso(c.alert.started_at), "resolved_at": iso(c.alert.resolved_at),
        "details": list(c.alert.details)} for c in changes]}
    return json.dumps({"type": WEBHOOK_EVENT, "timestamp": now.isoformat(), "data": data},
                      ensure_ascii=False).encode("utf-8")


def email_body(channel: EmailChannel, region: str, changes: Sequence[AlertChange], now: datetime) -> bytes:
    message = EmailMessage()
    message["Subject"] = f"{channel.subject_prefix} {title(region, changes)}"
    message["From"] = channel.sender
    message["To"] = ", ".join(channel.to)
    message["Date"] = format_datetime(now)
    message["Message-ID"] = make_msgid(domain=channel.sender.rsplit("@", 1)[1])
    lines = [title(region, changes), ""]
    for c in changes:
        done = f" → {resolution(c.alert)}" if c.change == "resolved" else ""
        lines += [f"【{CHANGE_LABELS[c.change]}】{c.alert.summary}{done}", f"    {_facts_line(c.alert)}", ""]
    lines.append("详情见运维看板 /ops 与 /api/v1/alerts。")
    message.set_content("\n".join(lines), charset="utf-8")
    return message.as_bytes()


AnyChannel = WebhookChannel | WeComChannel | DingTalkChannel | EmailChannel


def render(channel: AnyChannel, region: str, changes: Sequence[AlertChange], now: datetime) -> tuple[bytes, str]:
    """The body and content type of one message to `channel` about `changes`."""
    if isinstance(channel, WeComChannel):
        return wecom_body(region, changes), "application/json; charset=utf-8"
    if isinstance(channel, DingTalkChannel):
        return dingtalk_body(region, changes), "application/json; charset=utf-8"
    if isinstance(channel, EmailChannel):
        return email_body(channel, region, changes, now), "message/rfc822"
    return webhook_body(region, changes, now), "application/json"
