"""Shared fixtures for the deadline engine specifications: the shipped rules and a package-backed calendar."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from gateway.tickets.deadlines import CHINA_TZ, RuleBook, WorkingDayCalendar

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_FILE = REPO_ROOT / "config" / "deadline-rules.yaml"
OVERRIDES_FILE = REPO_ROOT / "config" / "calendar-overrides.yaml"


@pytest.fixture
def overrides_file() -> Path:
    return OVERRIDES_FILE


@pytest.fixture
def rules() -> RuleBook:
    return RuleBook.from_file(RULES_FILE)


@pytest.fixture
def calendar() -> WorkingDayCalendar:
    return WorkingDayCalendar()


@pytest.fixture
def cst() -> Callable[..., datetime]:
    """Build a Beijing-time datetime, as a 12315 registration timestamp would be."""

    def build(year: int, month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
        return datetime(year, month, day, hour, minute, tzinfo=CHINA_TZ)

    return build
