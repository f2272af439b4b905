"""Chinese working-day calendar: statutory holidays and make-up working days, with local overrides."""

from __future__ import annotations

import logging
from bisect import bisect_right
from datetime import date, datetime, timedelta
from pathlib import Path

import chinese_calendar
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.yamldoc import load_yaml_model

logger = logging.getLogger(__name__)

DEFAULT_OVERRIDES_PATH = Path(__file__).resolve().parents[3] / "config" / "calendar-overrides.yaml"

# The statutory holidays on fixed Gregorian dates (国务院《全国年节及纪念日放假办法》, as revised in force from
# 2025-01-01, art. 2): 元旦 1 January; 劳动节 1–2 May; 国庆节 1–3 October. A year without holiday data still has
# these; what moves (春节, 清明, 端午, 中秋 and every bridge and make-up day) waits for the State Council's notice.
FIXED_STATUTORY_HOLIDAYS: dict[tuple[int, int], str] = {
    (1, 1): "元旦", (5, 1): "劳动节", (5, 2): "劳动节", (10, 1): "国庆节", (10, 2): "国庆节", (10, 3): "国庆节",
}


class OverrideDay(BaseModel):
    """One date whose working/non-working status is decided locally rather than by the package."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: date
    reason: str = ""


class CalendarOverrides(BaseModel):
    """Contents of the calendar override file; its entries take precedence over ``chinesecalendar``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    covered_years: list[int] = Field(default_factory=list)
    holidays: list[OverrideDay] = Field(default_factory=list)
    workdays: list[OverrideDay] = Field(default_factory=list)

    @model_validator(mode="after")
    def _no_date_is_both(self) -> CalendarOverrides:
        both = {d.date for d in self.holidays} & {d.date for d in self.workdays}
        if both:
            listed = ", ".join(sorted(d.isoformat() for d in both))
            raise ValueError(f"dates listed both as holidays and as workdays: {listed}")
        return self


class WorkingDayCalendar:
    """Answers "is this a working day" and counts working days, never failing on an unknown year.

    Precedence: override holidays/workdays, then the ``chinesecalendar`` package, then (for a year
    neither knows) Monday–Friday less the fixed-date statutory holidays (``FIXED_STATUTORY_HOLIDAYS``), with one
    warning per year, recorded in ``fallback_years``.
    """

    def __init__(self, overrides: CalendarOverrides | None = None) -> None:
        self._overrides = overrides or CalendarOverrides()
        self._extra_holidays = frozenset(d.date for d in self._overrides.holidays)
        self._extra_workdays = frozenset(d.date for d in self._overrides.workdays)
        self._override_years = frozenset(self._overrides.covered_years)
        self._package_years: dict[int, bool] = {}
        self._fallback_years: set[int] = set()
        # Answers by date: chinesecalendar scans its whole holiday table on every call (bench/rest_intake).
        self._days: dict[date, bool] = {}
        # The working days of each year consulted, as sorted ordinals: counting n working days is a bisect, not a
        # walk of the calendar day by day (a status event counts 45 for mediation).
        self._working_ordinals: dict[int, list[int]] = {}

    @classmethod
    def from_file(cls, path: Path = DEFAULT_OVERRIDES_PATH) -> WorkingDayCalendar:
        """Build a calendar from an override file; a malformed file raises ConfigFileError."""
        return cls(load_yaml_model(path, CalendarOverrides))

    @property
    def overrides(self) -> CalendarOverrides:
        """The override file's entries this calendar was built from (two calendars of equal overrides agree)."""
        return self._overrides

    @property
    def fallback_years(self) -> frozenset[int]:
        """Years consulted so far that neither the package nor the override file covers."""
        return frozenset(self._fallback_years)

    def package_covers(self, year: int) -> bool:
        """Whether the installed ``chinesecalendar`` has holiday data for ``year``."""
        known = self._package_years.get(year)
        if known is None:
            try:
                chinese_calendar.is_workday(date(year, 1, 1))
                known = True
            except NotImplementedError:
                known = False
            self._package_years[year] = known
        return known

    def is_fallback_year(self, year: int) -> bool:
        """Whether ``year`` is counted Monday–Friday (less the fixed-date holidays) as nothing defines its holidays."""
        return not self.package_covers(year) and year not in self._override_years

    def is_working_day(self, day: date) -> bool:
        """Whether ``day`` is a working day on the Chinese calendar (after overrides)."""
        if isinstance(day, datetime):
            raise TypeError("is_working_day takes a date; convert the datetime in China time first")
        known = self._days.get(day)
        if known is None:
            known = self._days[day] = self._is_working_day(day)
        return known

    def _is_working_day(self, day: date) -> bool:
        if day in self._extra_holidays:
            return False
        if day in self._extra_workdays:
            return True
        if self.package_covers(day.year):
            return bool(chinese_calendar.is_workday(day))
        fallback = self.is_fallback_year(day.year)  # else the override file declares the year whole
        if fallback and day.year not in self._fallback_years:
            self._fallback_years.add(day.year)
            logger.warning(
                "no holiday data for year %d; counting Monday-Friday as working days, less the fixed-date "
                "statutory holidays (元旦 1 Jan, 劳动节 1-2 May, 国庆节 1-3 Oct); the moving holidays and make-up "
                "days are not known: add the year to the calendar override file once the State Council announces it",
                day.year,
                extra={"calendar": "fallback", "year": day.year},
            )
        return day.weekday() < 5 and not (fallback and (day.month, day.day) in FIXED_STATUTORY_HOLIDAYS)

    def working_ordinals(self, year: int) -> list[int]:
        """The working days of ``year`` (after overrides), as ``date.toordinal()`` values in order."""
        known = self._working_ordinals.get(year)
        if known is None:
            first, last = date(year, 1, 1).toordinal(), date(year, 12, 31).toordinal()
            known = [o for o in range(first, last + 1) if self.is_working_day(date.fromordinal(o))]
            self._working_ordinals[year] = known
        return known

    def add_working_days(self, start: date, n: int) -> date:
        """The ``n``-th working day after ``start`` (``start`` itself is not counted); n=0 gives start."""
        if n < 0:
            raise ValueError(f"n must be a non-negative number of working days, got {n}")
        if n == 0:
            return start
        after = start.toordinal()
        year = date.fromordinal(after + 1).year  # the first day counted, as a walk from ``start`` would
        while True:
            days = self.working_ordinals(year)
            first = bisect_right(days, after)
            if first + n <= len(days):
                return date.fromordinal(days[first + n - 1])
            n -= len(days) - first
            year += 1

    def working_days_between(self, start: date, end: date, *, stop_after: int | None = None) -> int:
        """Working days in the span after ``start`` up to and including ``end`` (0 if end <= start).

        ``stop_after`` ends the count early once it exceeds that number (the answer is then ``stop_after + 1``),
        for cheap threshold checks.
        """
        if end <= start:
            return 0
        after, through = start.toordinal(), end.toordinal()
        count = 0
        for year in range(date.fromordinal(after + 1).year, end.year + 1):
            days = self.working_ordinals(year)
            count += bisect_right(days, through) - bisect_right(days, after)
            if stop_after is not None and count > stop_after:
                return stop_after + 1
        return count

    def span_uses_fallback(self, start: date, end: date) -> bool:
        """Whether counting from after ``start`` through ``end`` touched a Monday–Friday fallback year."""
        first = (start + timedelta(days=1)).year
        return any(self.is_fallback_year(y) for y in range(first, end.year + 1))
