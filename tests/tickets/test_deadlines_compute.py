"""Specifications of deadline computation, status classification and extension.

Expected dates were worked out by hand from the State Council holiday notices for 2021, 2023 and
2024, counting from the day after the starting event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

from gateway.tickets.deadlines import (
    CalendarOverrides,
    Deadline,
    ExtensionNotAllowed,
    OverrideDay,
    RuleBook,
    WorkingDayCalendar,
    article_zh,
    compute_deadlines,
    deadline_status,
    extend,
)

Cst = Callable[..., datetime]


def only(deadlines: list[Deadline], kind: str) -> Deadline:
    [match] = [d for d in deadlines if d.kind == kind]
    return match


# --- acceptance (投诉, 7 working days from receipt) -------------------------------------------------


def test_complaint_received_friday_before_dragon_boat_is_due_2021_06_23(
    rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    [deadline] = compute_deadlines("02", cst(2021, 6, 11), rules, calendar)
    assert deadline.kind == "acceptance"
    assert deadline.due_on == date(2021, 6, 23)
    assert deadline.working_days == 7
    assert deadline.rule_set == "order20-2019"
    assert deadline.basis == "7 working days from receipt 2021-06-11 (Art. 14)"
    assert deadline.basis_zh == "自收到之日（2021-06-11）起7个工作日（第十四条）"  # what operators read
    assert deadline.calendar_fallback is False


def test_the_receipt_day_is_taken_in_china_time(rules: RuleBook, calendar: WorkingDayCalendar) -> None:
    # 20:00 UTC on Thursday 06-10 is 04:00 on Friday 06-11 in Beijing.
    [deadline] = compute_deadlines("02", datetime(2021, 6, 10, 20, tzinfo=UTC), rules, calendar)
    assert deadline.due_on == date(2021, 6, 23)


def test_make_up_working_sunday_and_saturday_are_counted(
    rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    # Fri 2021-09-24: Sun 09-26 (make-up), 27, 28, 29, 30, Fri 10-08, Sat 10-09 (make-up).
    [deadline] = compute_deadlines("02", cst(2021, 9, 24), rules, calendar)
    assert deadline.due_on == date(2021, 10, 9)


def test_national_day_golden_week_is_skipped(rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst) -> None:
    # Thu 2021-09-30: 10-01..10-07 off; 10-08, Sat 10-09 (make-up), 10-11..10-15.
    [deadline] = compute_deadlines("02", cst(2021, 9, 30), rules, calendar)
    assert deadline.due_on == date(2021, 10, 15)


def test_spring_festival_is_skipped(rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst) -> None:
    # Thu 2024-02-08: Fri 02-09 (除夕, a working day), 02-10..02-17 off, Sun 02-18 (make-up), 02-19..02-23.
    [deadline] = compute_deadlines("02", cst(2024, 2, 8), rules, calendar)
    assert deadline.due_on == date(2024, 2, 23)
    assert deadline.rule_set == "order20-2022"


def test_rule_set_follows_the_receipt_date(rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst) -> None:
    [early] = compute_deadlines("02", cst(2021, 1, 5), rules, calendar)
    [late] = compute_deadlines("02", cst(2023, 3, 1), rules, calendar)
    assert early.rule_set == "order20-2019"
    assert late.rule_set == "order20-2022"


# --- reports (举报) and enquiries (咨询) -------------------------------------------------------------


def test_report_clue_is_checked_within_15_working_days(
    rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    # Mon 2023-09-25: 26, 27, 28; 09-29..10-06 off; Sat 10-07 and Sun 10-08 (make-up); 10-09..10-20.
    [deadline] = compute_deadlines("03", cst(2023, 9, 25), rules, calendar)
    assert deadline.kind == "clue_check"
    assert deadline.due_on == date(2023, 10, 20)
    assert deadline.working_days == 15


def test_an_enquiry_has_no_statutory_deadline(
    rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    assert compute_deadlines("01", cst(2023, 9, 25), rules, calendar) == []


def test_a_naive_receipt_time_is_refused(rules: RuleBook, calendar: WorkingDayCalendar) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        compute_deadlines("02", datetime(2021, 6, 11, 10), rules, calendar)


# --- calendar fallback and overrides ----------------------------------------------------------------


def test_a_deadline_in_2030_falls_back_to_monday_to_friday_and_says_so(
    rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst, caplog: pytest.LogCaptureFixture
) -> None:
    [first] = compute_deadlines("02", cst(2030, 6, 7), rules, calendar)
    compute_deadlines("03", cst(2030, 6, 7), rules, calendar)
    assert first.due_on == date(2030, 6, 18)
    assert first.calendar_fallback is True
    assert "2030" in first.basis
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert calendar.fallback_years == frozenset({2030})


def test_a_deadline_running_into_an_unknown_year_is_flagged(
    rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    [deadline] = compute_deadlines("02", cst(2026, 12, 28), rules, calendar)
    assert deadline.due_on.year == 2027
    assert deadline.calendar_fallback is True
    assert calendar.fallback_years == frozenset({2027})


def test_a_year_covered_by_the_override_is_not_flagged(rules: RuleBook, cst: Cst) -> None:
    calendar = WorkingDayCalendar(CalendarOverrides(covered_years=[2030]))
    [deadline] = compute_deadlines("02", cst(2030, 6, 7), rules, calendar)
    assert deadline.calendar_fallback is False


def test_an_override_holiday_moves_the_deadline_later(rules: RuleBook, cst: Cst) -> None:
    calendar = WorkingDayCalendar(CalendarOverrides(holidays=[OverrideDay(date=date(2021, 6, 15))]))
    [deadline] = compute_deadlines("02", cst(2021, 6, 11), rules, calendar)
    assert deadline.due_on == date(2021, 6, 24)


def test_an_override_make_up_day_moves_the_deadline_earlier(rules: RuleBook, cst: Cst) -> None:
    calendar = WorkingDayCalendar(CalendarOverrides(workdays=[OverrideDay(date=date(2021, 6, 19))]))
    [deadline] = compute_deadlines("02", cst(2021, 6, 11), rules, calendar)
    assert deadline.due_on == date(2021, 6, 22)


# --- status --------------------------------------------------------------------------------------------


@pytest.fixture
def due_2021_06_23(rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst) -> Deadline:
    [deadline] = compute_deadlines("02", cst(2021, 6, 11), rules, calendar)
    return deadline


def test_more_than_two_working_days_left_is_ok(
    due_2021_06_23: Deadline, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    # Fri 06-18: Mon 21, Tue 22, Wed 23 remain.
    assert deadline_status(due_2021_06_23, cst(2021, 6, 18), calendar) == "ok"


def test_two_working_days_left_is_due_soon(
    due_2021_06_23: Deadline, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    assert deadline_status(due_2021_06_23, cst(2021, 6, 21), calendar) == "due_soon"


def test_the_due_day_itself_is_due_soon(
    due_2021_06_23: Deadline, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    assert deadline_status(due_2021_06_23, cst(2021, 6, 23, 17, 30), calendar) == "due_soon"


def test_the_day_after_the_due_day_in_china_time_is_overdue(
    due_2021_06_23: Deadline, calendar: WorkingDayCalendar
) -> None:
    # 16:30 UTC on 06-23 is already 00:30 on 06-24 in Beijing.
    assert deadline_status(due_2021_06_23, datetime(2021, 6, 23, 16, 30, tzinfo=UTC), calendar) == "overdue"


def test_due_soon_counts_working_days_not_calendar_days(
    rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    # Due Sat 2021-10-09; on 09-30 it is nine calendar days away but only two working days (10-08, 10-09).
    [deadline] = compute_deadlines("02", cst(2021, 9, 24), rules, calendar)
    assert deadline.due_on == date(2021, 10, 9)
    assert deadline_status(deadline, cst(2021, 9, 30), calendar) == "due_soon"


def test_the_due_soon_threshold_is_configurable(
    due_2021_06_23: Deadline, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    assert deadline_status(due_2021_06_23, cst(2021, 6, 18), calendar, due_soon_within=3) == "due_soon"


# --- extension ---------------------------------------------------------------------------------------


def test_a_clue_check_extension_adds_15_working_days(
    rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    [deadline] = compute_deadlines("03", cst(2023, 9, 25), rules, calendar)
    extended = extend(deadline, rules, calendar)
    assert extended.due_on == date(2023, 11, 10)
    assert extended.working_days == 30
    assert extended.extensions == 1
    assert "extended by 15 working days" in extended.basis
    assert "；延长15个工作日（第二十三条；《市场监督管理行政处罚程序规定》第十八条）" in (extended.basis_zh or "")
    assert deadline.due_on == date(2023, 10, 20)  # the original is unchanged


def test_a_clue_check_can_be_extended_only_once(
    rules: RuleBook, calendar: WorkingDayCalendar, cst: Cst
) -> None:
    [deadline] = compute_deadlines("03", cst(2023, 9, 25), rules, calendar)
    with pytest.raises(ExtensionNotAllowed, match="allows 1"):
        extend(extend(deadline, rules, calendar), rules, calendar)


def test_the_acceptance_deadline_cannot_be_extended(
    due_2021_06_23: Deadline, rules: RuleBook, calendar: WorkingDayCalendar
) -> None:
    with pytest.raises(ExtensionNotAllowed, match="cannot be extended"):
        extend(due_2021_06_23, rules, calendar)


@pytest.mark.parametrize(("article", "cited"), [
    ("Art. 14", "第十四条"), ("Art. 10", "第十条"), ("Art. 105", "第一百零五条"), ("Art. 120", "第一百二十条"),
    ("Art. 23, 31; 市场监督管理行政处罚程序规定 Art. 18",
     "第二十三、三十一条；《市场监督管理行政处罚程序规定》第十八条"),
])
def test_an_article_is_cited_in_chinese(article: str, cited: str) -> None:
    assert article_zh(article) == cited
