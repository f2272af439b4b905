"""Specifications of the working-day calendar: package data, overrides and the Mon–Fri fallback."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

import pytest

from gateway.tickets.deadlines import CalendarOverrides, ConfigFileError, OverrideDay, WorkingDayCalendar

CALENDAR_LOGGER = "gateway.tickets.deadlines.calendar"


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == CALENDAR_LOGGER and r.levelno == logging.WARNING]


def test_dragon_boat_monday_2021_is_not_a_working_day(calendar: WorkingDayCalendar) -> None:
    assert not calendar.is_working_day(date(2021, 6, 14))


def test_make_up_sunday_2021_09_26_is_a_working_day(calendar: WorkingDayCalendar) -> None:
    assert calendar.is_working_day(date(2021, 9, 26))


def test_make_up_saturday_2021_10_09_is_a_working_day(calendar: WorkingDayCalendar) -> None:
    assert calendar.is_working_day(date(2021, 10, 9))


def test_the_start_day_is_not_counted(calendar: WorkingDayCalendar) -> None:
    # Fri 2021-06-11: the weekend and the Dragon Boat Monday pass, Tue 06-15 is the first working day.
    assert calendar.add_working_days(date(2021, 6, 11), 1) == date(2021, 6, 15)


def test_zero_working_days_is_the_start_day(calendar: WorkingDayCalendar) -> None:
    assert calendar.add_working_days(date(2021, 6, 12), 0) == date(2021, 6, 12)


def test_negative_working_days_are_refused(calendar: WorkingDayCalendar) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        calendar.add_working_days(date(2021, 6, 11), -1)


def test_a_datetime_is_refused_because_its_china_date_is_ambiguous(calendar: WorkingDayCalendar) -> None:
    with pytest.raises(TypeError):
        calendar.is_working_day(datetime(2021, 6, 11, 10))


def test_a_year_the_package_knows_does_not_warn(
    calendar: WorkingDayCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    calendar.add_working_days(date(2024, 2, 8), 7)
    assert fallback_warnings(caplog) == []
    assert calendar.fallback_years == frozenset()


def test_a_year_beyond_the_package_counts_monday_to_friday(calendar: WorkingDayCalendar) -> None:
    assert calendar.is_working_day(date(2030, 9, 30))  # a Monday
    assert not calendar.is_working_day(date(2030, 10, 5))  # Saturday
    assert calendar.add_working_days(date(2030, 6, 7), 7) == date(2030, 6, 18)


# The statutory holidays on fixed dates (全国年节及纪念日放假办法, art. 2, in force from 2025), written out for 2030
# from the calendar (each a weekday that year), not from the gateway's table: 元旦, 劳动节 1–2 May, 国庆节 1–3 Oct.
FIXED_HOLIDAYS_2030 = [date(2030, 1, 1), date(2030, 5, 1), date(2030, 5, 2), date(2030, 10, 1), date(2030, 10, 2),
                       date(2030, 10, 3)]


@pytest.mark.parametrize("day", FIXED_HOLIDAYS_2030, ids=str)
def test_a_fixed_date_statutory_holiday_is_not_a_working_day_in_a_fallback_year(
        calendar: WorkingDayCalendar, day: date) -> None:
    assert day.weekday() < 5
    assert not calendar.is_working_day(day)


def test_counting_across_national_day_in_a_fallback_year_skips_its_fixed_days(calendar: WorkingDayCalendar) -> None:
    # Fri 27 Sep 2030 + 3: Mon 30 Sep, (Tue–Thu 1–3 Oct are 国庆节), Fri 4 Oct, (weekend), Mon 7 Oct.
    assert calendar.add_working_days(date(2030, 9, 27), 3) == date(2030, 10, 7)


def test_the_fallback_warning_says_which_holidays_it_counts(
        calendar: WorkingDayCalendar, caplog: pytest.LogCaptureFixture) -> None:
    calendar.is_working_day(date(2030, 3, 1))
    message = fallback_warnings(caplog)[0].getMessage()
    assert "2030" in message and "元旦" in message and "劳动节" in message and "国庆节" in message


def test_fallback_warns_once_per_year_and_records_the_year(
    calendar: WorkingDayCalendar, caplog: pytest.LogCaptureFixture
) -> None:
    calendar.add_working_days(date(2030, 3, 1), 10)
    calendar.add_working_days(date(2030, 6, 7), 7)
    calendar.add_working_days(date(2031, 6, 6), 7)

    warnings = fallback_warnings(caplog)
    assert len(warnings) == 2
    assert "2030" in warnings[0].getMessage()
    assert "2031" in warnings[1].getMessage()
    assert calendar.fallback_years == frozenset({2030, 2031})


def test_override_holiday_takes_precedence_over_the_package() -> None:
    # Tue 2021-06-15 is a working day in the package; a local closure makes it a holiday.
    overrides = CalendarOverrides(holidays=[OverrideDay(date=date(2021, 6, 15), reason="local closure")])
    assert not WorkingDayCalendar(overrides).is_working_day(date(2021, 6, 15))


def test_override_workday_takes_precedence_over_the_package() -> None:
    overrides = CalendarOverrides(workdays=[OverrideDay(date=date(2021, 6, 19), reason="make-up day")])
    assert WorkingDayCalendar(overrides).is_working_day(date(2021, 6, 19))


def test_override_entries_apply_in_a_fallback_year_which_still_warns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    overrides = CalendarOverrides(holidays=[OverrideDay(date=date(2030, 10, 7))])
    calendar = WorkingDayCalendar(overrides)
    assert not calendar.is_working_day(date(2030, 10, 7))
    assert calendar.is_working_day(date(2030, 10, 8))
    assert len(fallback_warnings(caplog)) == 1


def test_a_year_declared_covered_by_the_override_does_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    overrides = CalendarOverrides(covered_years=[2030], holidays=[OverrideDay(date=date(2030, 10, 1))])
    calendar = WorkingDayCalendar(overrides)
    assert not calendar.is_working_day(date(2030, 10, 1))
    assert calendar.is_working_day(date(2030, 10, 2))
    assert fallback_warnings(caplog) == []
    assert calendar.fallback_years == frozenset()


def test_override_file_is_read_from_the_given_path(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text("covered_years: [2030]\nworkdays:\n  - date: 2030-10-12\n    reason: 调休上班\n")
    assert WorkingDayCalendar.from_file(path).is_working_day(date(2030, 10, 12))


def test_the_shipped_override_file_loads_and_changes_nothing(overrides_file: Path) -> None:
    calendar = WorkingDayCalendar.from_file(overrides_file)
    assert calendar.add_working_days(date(2021, 6, 11), 7) == date(2021, 6, 23)


def test_a_date_both_holiday_and_workday_is_rejected_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text("holidays:\n  - date: 2030-10-01\nworkdays:\n  - date: 2030-10-01\n")
    with pytest.raises(ConfigFileError, match="2030-10-01") as excinfo:
        WorkingDayCalendar.from_file(path)
    assert str(path) in str(excinfo.value)


def test_an_override_entry_without_a_date_is_rejected_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "overrides.yaml"
    path.write_text("holidays:\n  - reason: 元旦\n")
    with pytest.raises(ConfigFileError, match=r"overrides.yaml:2: holidays\[0\]\.date: Field required"):
        WorkingDayCalendar.from_file(path)
