"""Statutory deadline engine: Chinese working-day calendar, dated rule sets and deadline computation."""

from contracts.status import DeadlineKind
from contracts.ticket import Deadline
from contracts.yamldoc import YamlFileError as ConfigFileError
from gateway.tickets.deadlines.calendar import (
    DEFAULT_OVERRIDES_PATH,
    CalendarOverrides,
    OverrideDay,
    WorkingDayCalendar,
)
from gateway.tickets.deadlines.compute import (
    CHINA_TZ,
    BusinessType,
    DeadlineStatus,
    ExtensionNotAllowed,
    article_zh,
    china_date,
    compute_deadlines,
    deadline_from,
    deadline_status,
    extend,
    limit_of,
)
from gateway.tickets.deadlines.lifecycle import deadlines_through, with_deadlines
from gateway.tickets.deadlines.rules import (
    DEFAULT_RULES_PATH,
    ExtensionRule,
    Limits,
    NoRuleSetInForce,
    RuleBook,
    RuleSet,
    TimeLimit,
)

__all__ = [
    "CHINA_TZ",
    "DEFAULT_OVERRIDES_PATH",
    "DEFAULT_RULES_PATH",
    "BusinessType",
    "CalendarOverrides",
    "ConfigFileError",
    "Deadline",
    "DeadlineKind",
    "DeadlineStatus",
    "ExtensionNotAllowed",
    "ExtensionRule",
    "Limits",
    "NoRuleSetInForce",
    "OverrideDay",
    "RuleBook",
    "RuleSet",
    "TimeLimit",
    "WorkingDayCalendar",
    "article_zh",
    "china_date",
    "compute_deadlines",
    "deadline_from",
    "deadline_status",
    "deadlines_through",
    "extend",
    "limit_of",
    "with_deadlines",
]
