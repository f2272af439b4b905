"""Counting working days by each year's working-day ordinals gives what walking the calendar day by day gave, on
the package's years and the Monday–Friday fallback, with local holidays and make-up working days, across years."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from gateway.tickets.deadlines import WorkingDayCalendar
from gateway.tickets.deadlines.calendar import CalendarOverrides, OverrideDay

# Working-day counts the deadline rules use (acceptance 7, reporter notice 5, clue check 15, mediation 45) and a
# few that cross a year or two.
COUNTS = (0, 1, 2, 5, 7, 10, 15, 30, 45, 60, 90, 250, 400)
# A local closure in a package year, a make-up Saturday in a fallback year, a holiday in a fallback year.
LOCAL = CalendarOverrides(
    holidays=[OverrideDay(date=date(2024, 3, 15)), OverrideDay(date=date(2028, 6, 7))],
    workdays=[OverrideDay(date=date(2024, 3, 16)), OverrideDay(date=date(2027, 2, 13))],
)


def walked(calendar: WorkingDayCalendar, start: date, n: int) -> date:
    """The algorithm before: one day at a time, asking the calendar of each."""
    day = start
    while n:
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            n -= 1
    return day


def walked_between(calendar: WorkingDayCalendar, start: date, end: date, stop_after: int | None) -> int:
    count, day = 0, start
    while day < end:
        day += timedelta(days=1)
        if calendar.is_working_day(day):
            count += 1
            if stop_after is not None and count > stop_after:
                break
    return count


def starts() -> list[date]:
    """Every third day from 2019 into the fallback years, and every day around the turns of the years."""
    days = [date(2019, 1, 1) + timedelta(days=3 * k) for k in range(0, 3650 // 3)]
    days += [date(y, 12, 20) + timedelta(days=k) for y in range(2019, 2029) for k in range(20)]
    return days


@pytest.mark.parametrize("overrides", [None, LOCAL], ids=["package-and-fallback", "with-local-overrides"])
def test_adding_working_days_equals_the_day_by_day_walk(overrides: CalendarOverrides | None) -> None:
    counted, reference = WorkingDayCalendar(overrides), WorkingDayCalendar(overrides)
    for start in starts():
        for n in COUNTS:
            assert counted.add_working_days(start, n) == walked(reference, start, n), (start, n)


@pytest.mark.parametrize("overrides", [None, LOCAL], ids=["package-and-fallback", "with-local-overrides"])
def test_working_days_between_equals_the_day_by_day_count(overrides: CalendarOverrides | None) -> None:
    counted, reference = WorkingDayCalendar(overrides), WorkingDayCalendar(overrides)
    for start in starts()[::4]:
        for span in (-3, 0, 1, 6, 20, 70, 400):
            end = start + timedelta(days=span)
            for stop_after in (None, 0, 3, 10):
                expected = walked_between(reference, start, end, stop_after)
                assert counted.working_days_between(start, end, stop_after=stop_after) == expected, (
                    start, end, stop_after)


def test_known_dates_hold_with_local_overrides() -> None:
    # Thu 2024-03-14 + 1: Fri 03-15 is a local holiday, Sat 03-16 a local make-up working day.
    assert WorkingDayCalendar(LOCAL).add_working_days(date(2024, 3, 14), 1) == date(2024, 3, 16)
    # Fri 2027-02-12 (a fallback year) + 1: the make-up Saturday 02-13.
    assert WorkingDayCalendar(LOCAL).add_working_days(date(2027, 2, 12), 1) == date(2027, 2, 13)
    # 2021-06-11 + 7: the Dragon Boat Monday is not counted (DESIGN.md).
    assert WorkingDayCalendar().add_working_days(date(2021, 6, 11), 7) == date(2021, 6, 23)


def test_counting_into_a_year_touches_it_as_the_walk_did() -> None:
    calendar = WorkingDayCalendar()
    calendar.add_working_days(date(2026, 12, 1), 10)  # stays in 2026
    assert calendar.fallback_years == frozenset()
    calendar.add_working_days(date(2026, 12, 31), 1)  # the first day counted is in 2027
    assert calendar.fallback_years == frozenset({2027})
