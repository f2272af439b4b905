"""Computes statutory deadlines for a ticket and classifies them as ok, due soon or overdue."""

from __future__ import annotations

import functools
import re
from datetime import date, datetime, timedelta, timezone
from typing import Literal

from contracts.status import DeadlineKind
from contracts.ticket import Deadline
from gateway.errors import GatewayError
from gateway.tickets.deadlines.calendar import WorkingDayCalendar
from gateway.tickets.deadlines.rules import LimitName, RuleBook, TimeLimit

# China has had no daylight saving since 1991, so a fixed offset needs no tz database.
CHINA_TZ = timezone(timedelta(hours=8), "CST")

BusinessType = Literal["01", "02", "03"]  # 01 咨询 / 02 投诉 / 03 举报
DeadlineStatus = Literal["ok", "due_soon", "overdue"]

_LIMIT_OF_KIND: dict[DeadlineKind, LimitName] = {
    "acceptance": "acceptance",
    "mediation": "mediation",
    "clue_check": "report_clue_check",
    "reporter_notice": "reporter_notice",
    "jurisdiction_dispute": "jurisdiction_dispute",
}
_EVENT_WORDS = {
    "receipt": "receipt",
    "acceptance": "acceptance",
    "filing_decision": "filing decision",
    "dispute": "dispute",
}
_EVENT_WORDS_ZH = {
    "receipt": "收到之日",
    "acceptance": "受理之日",
    "filing_decision": "作出立案决定之日",
    "dispute": "发生管辖争议之日",
}
_DIGITS_ZH = "零一二三四五六七八九"
_ARTICLE = re.compile(r"Art\. (\d+(?:, \d+)*)")


def _number_zh(n: int) -> str:
    """1-999 in Chinese numerals, as articles are numbered: 14 十四, 21 二十一, 105 一百零五."""
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    text = f"{_DIGITS_ZH[hundreds]}百" if hundreds else ""
    if tens:
        text += ("" if tens == 1 and not hundreds else _DIGITS_ZH[tens]) + "十"
    elif hundreds and ones:
        text += "零"
    return text + (_DIGITS_ZH[ones] if ones else "")


@functools.cache  # a handful of articles, worked out on every status event otherwise
def article_zh(article: str) -> str:
    """A rule's article as Chinese readers cite it: "Art. 23, 31; 市场监督管理行政处罚程序规定 Art. 18" →
    "第二十三、三十一条；《市场监督管理行政处罚程序规定》第十八条"."""
    parts = []
    for part in article.split(";"):
        part = part.strip()
        match = _ARTICLE.search(part)
        if match is None:
            parts.append(part)
            continue
        law = part[:match.start()].strip()
        numbers = "、".join(_number_zh(int(n)) for n in match.group(1).split(", "))
        parts.append((f"《{law}》" if law else "") + f"第{numbers}条")
    return "；".join(parts)


class ExtensionNotAllowed(GatewayError, ValueError):
    """The time limit has no extension rule, or its extensions are used up."""


def china_date(moment: datetime) -> date:
    """The calendar day of ``moment`` in China time; naive datetimes are refused as ambiguous."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} has no time zone; deadlines need tz-aware times")
    return moment.astimezone(CHINA_TZ).date()


def _fallback_note(calendar: WorkingDayCalendar, start: date, end: date) -> str:
    years = [y for y in range(start.year, end.year + 1) if calendar.is_fallback_year(y)]
    if not years:
        return ""
    listed = ", ".join(str(y) for y in years)
    return (f"; counted Monday-Friday less 元旦, 劳动节 and 国庆节 for {listed} (no holiday data: the moving "
            "holidays are not counted)")


def _fallback_note_zh(calendar: WorkingDayCalendar, start: date, end: date) -> str:
    years = [y for y in range(start.year, end.year + 1) if calendar.is_fallback_year(y)]
    if not years:
        return ""
    return f"；{'、'.join(str(y) for y in years)}年无法定节假日数据，按周一至周五计算"


def deadline_from(
    kind: DeadlineKind,
    event_at: datetime,
    governing_day: date,
    rules: RuleBook,
    calendar: WorkingDayCalendar,
) -> Deadline:
    """The ``kind`` deadline counted from ``event_at`` under the rule set in force on ``governing_day``."""
    rule_set = rules.rules_on(governing_day)
    start = china_date(event_at)
    limit = rule_set.limits.get(_LIMIT_OF_KIND[kind])
    due, fallback, basis, basis_zh = _counted(limit, start, calendar)
    return Deadline(
        kind=kind,
        starts_on=start,
        due_on=due,
        working_days=limit.working_days,
        rule_set=rule_set.id,
        basis=basis,
        basis_zh=basis_zh,
        calendar_fallback=fallback,
    )


@functools.lru_cache(maxsize=4096)
def _counted(limit: TimeLimit, start: date, calendar: WorkingDayCalendar) -> tuple[date, bool, str, str]:
    """A limit counted from ``start``: its due day, whether a fallback year was counted, and its basis in English
    and Chinese. Remembered: every status event works a ticket's limits out again from its history, and the
    tickets of a day share their start days. A calendar's answers for a day never change while it lives."""
    due = calendar.add_working_days(start, limit.working_days)
    fallback = calendar.span_uses_fallback(start, due)
    basis = (
        f"{limit.working_days} working days from {_EVENT_WORDS[limit.counted_from]} "
        f"{start.isoformat()} ({limit.article})"
    )
    basis_zh = (f"自{_EVENT_WORDS_ZH[limit.counted_from]}（{start.isoformat()}）起{limit.working_days}个工作日"
                f"（{article_zh(limit.article)}）")
    if fallback:
        basis += _fallback_note(calendar, start + timedelta(days=1), due)
        basis_zh += _fallback_note_zh(calendar, start + timedelta(days=1), due)
    return due, fallback, basis, basis_zh


def compute_deadlines(
    business_type: BusinessType,
    received_at: datetime,
    rules: RuleBook,
    calendar: WorkingDayCalendar,
) -> list[Deadline]:
    """The statutory deadlines a ticket starts with on receipt: a complaint's acceptance, a report's clue
    check. Enquiries (01) have none. The rule set is the one in force on receipt; the limits that later
    status events start, extend and end are worked out by `deadlines_through`.
    """
    received_on = china_date(received_at)
    if business_type == "01":
        return []
    if business_type == "03":
        return [deadline_from("clue_check", received_at, received_on, rules, calendar)]
    return [deadline_from("acceptance", received_at, received_on, rules, calendar)]


def deadline_status(
    deadline: Deadline,
    now: datetime,
    calendar: WorkingDayCalendar,
    *,
    due_soon_within: int = 2,
) -> DeadlineStatus:
    """``overdue`` after the due day (China time); ``due_soon`` when at most ``due_soon_within``
    working days remain after today (the due day itself counts as remaining); otherwise ``ok``.
    """
    if due_soon_within < 0:
        raise ValueError(f"due_soon_within must be >= 0, got {due_soon_within}")
    today = china_date(now)
    if today > deadline.due_on:
        return "overdue"
    remaining = calendar.working_days_between(today, deadline.due_on, stop_after=due_soon_within)
    return "due_soon" if remaining <= due_soon_within else "ok"


def limit_of(deadline: Deadline, rules: RuleBook) -> TimeLimit:
    """The rule a deadline runs under, in its own rule set."""
    return rules.get(deadline.rule_set).limits.get(_LIMIT_OF_KIND[deadline.kind])


def extend(deadline: Deadline, rules: RuleBook, calendar: WorkingDayCalendar) -> Deadline:
    """The deadline pushed out by one extension under its own rule set's extension rule."""
    limit = limit_of(deadline, rules)
    rule = limit.extension
    if rule is None:
        raise ExtensionNotAllowed(
            f"{deadline.kind} ({limit.article}, rule set {deadline.rule_set}) cannot be extended"
        )
    if deadline.extensions >= rule.max_extensions:
        raise ExtensionNotAllowed(
            f"{deadline.kind} already extended {deadline.extensions} time(s); "
            f"rule set {deadline.rule_set} allows {rule.max_extensions}"
        )
    due = calendar.add_working_days(deadline.due_on, rule.working_days)
    fallback = calendar.span_uses_fallback(deadline.due_on, due)
    basis = (
        f"{deadline.basis}; extended by {rule.working_days} working days ({rule.article or limit.article})"
    )
    basis_zh = (f"{deadline.basis_zh or deadline.basis}；延长{rule.working_days}个工作日"
                f"（{article_zh(rule.article or limit.article)}）")
    if fallback and not deadline.calendar_fallback:
        basis += _fallback_note(calendar, deadline.due_on + timedelta(days=1), due)
        basis_zh += _fallback_note_zh(calendar, deadline.due_on + timedelta(days=1), due)
    return deadline.model_copy(
        update={
            "due_on": due,
            "working_days": deadline.working_days + rule.working_days,
            "basis": basis,
            "basis_zh": basis_zh[:300],
            "calendar_fallback": deadline.calendar_fallback or fallback,
            "extensions": deadline.extensions + 1,
        }
    )
