"""The calendar remembers its answers by date (chinesecalendar scans its whole table on every call):
remembered answers are the answers, overrides and the Monday–Friday fallback included."""

from __future__ import annotations

from datetime import date, timedelta

from gateway.tickets.deadlines import WorkingDayCalendar
from gateway.tickets.deadlines.calendar import CalendarOverrides, OverrideDay


def test_remembered_answers_equal_fresh_ones_across_years_overrides_and_fallback() -> None:
    overrides = CalendarOverrides(holidays=[OverrideDay(date=date(2024, 3, 15))],
                                  workdays=[OverrideDay(date=date(2024, 3, 16))])
    remembering = WorkingDayCalendar(overrides)
    day = date(2023, 12, 1)
    while day < date(2031, 2, 1):  # beyond the package's data: the fallback years too
        fresh = WorkingDayCalendar(overrides).is_working_day(day)
        assert remembering.is_working_day(day) == fresh
        assert remembering.is_working_day(day) == fresh  # the remembered answer
        day += timedelta(days=5)
    assert not remembering.is_working_day(date(2024, 3, 15))
    assert remembering.is_working_day(date(2024, 3, 16))


def test_the_fallback_warning_is_still_given_once_per_year() -> None:
    calendar = WorkingDayCalendar()
    calendar.add_working_days(date(2030, 1, 1), 30)
    calendar.add_working_days(date(2030, 1, 1), 30)
    assert calendar.fallback_years == frozenset({2030})
