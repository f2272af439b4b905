"""Specifications of the rule book: dated rule sets, selection by date, and validation errors."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from gateway.tickets.deadlines import ConfigFileError, NoRuleSetInForce, RuleBook

LIMITS = """\
    limits:
      acceptance: {working_days: 7, counted_from: receipt, article: "Art. 14"}
      mediation: {working_days: 45, counted_from: acceptance, article: "Art. 21"}
      report_clue_check: {working_days: 15, counted_from: receipt, article: "Art. 23"}
      reporter_notice: {working_days: 5, counted_from: filing_decision, article: "Art. 31"}
      jurisdiction_dispute: {working_days: 7, counted_from: dispute, article: "Art. 30"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "deadline-rules.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_rules_hold_the_original_and_the_amended_order_20(rules: RuleBook) -> None:
    assert [r.id for r in rules.rule_sets] == ["order20-2019", "order20-2022"]
    assert all("总局令第20号" in r.source for r in rules.rule_sets)


def test_a_ticket_received_in_january_2021_uses_the_original_rule_set(rules: RuleBook) -> None:
    assert rules.rules_on(date(2021, 1, 5)).id == "order20-2019"


def test_a_ticket_received_in_2023_uses_the_amended_rule_set(rules: RuleBook) -> None:
    assert rules.rules_on(date(2023, 5, 10)).id == "order20-2022"


def test_the_amendment_applies_from_2022_03_24_inclusive(rules: RuleBook) -> None:
    assert rules.rules_on(date(2022, 3, 23)).id == "order20-2019"
    assert rules.rules_on(date(2022, 3, 24)).id == "order20-2022"


def test_a_date_before_order_20_took_effect_has_no_rule_set(rules: RuleBook) -> None:
    with pytest.raises(NoRuleSetInForce, match="2019-12-31"):
        rules.rules_on(date(2019, 12, 31))


def test_statutory_limits_are_read_from_data(rules: RuleBook) -> None:
    limits = rules.rules_on(date(2023, 5, 10)).limits
    assert limits.acceptance.working_days == 7
    assert limits.mediation.working_days == 45
    assert limits.report_clue_check.working_days == 15
    assert limits.reporter_notice.working_days == 5
    assert limits.jurisdiction_dispute.working_days == 7
    assert limits.report_clue_check.extension is not None
    assert limits.report_clue_check.extension.working_days == 15
    assert limits.acceptance.extension is None


def test_a_wrongly_typed_limit_names_file_line_and_key(tmp_path: Path) -> None:
    text = "rule_sets:\n  - id: a\n    effective_from: 2020-01-01\n    source: s\n" + LIMITS.replace(
        "acceptance: {working_days: 7,", "acceptance: {working_days: seven,"
    )
    path = write(tmp_path, text)
    with pytest.raises(ConfigFileError) as excinfo:
        RuleBook.from_file(path)
    assert f"{path}:6: rule_sets[0].limits.acceptance.working_days: Input should be a valid integer" in str(
        excinfo.value
    )


def test_a_missing_limit_names_its_key(tmp_path: Path) -> None:
    text = "rule_sets:\n  - id: a\n    effective_from: 2020-01-01\n    source: s\n" + "".join(
        line + "\n" for line in LIMITS.splitlines() if "mediation" not in line
    )
    with pytest.raises(
        ConfigFileError, match=r"deadline-rules.yaml:5: rule_sets\[0\]\.limits\.mediation: Field required"
    ):
        RuleBook.from_file(write(tmp_path, text))


def test_an_unknown_key_is_rejected_by_name(tmp_path: Path) -> None:
    text = (
        "rule_sets:\n  - id: a\n    effective_from: 2020-01-01\n    source: s\n    efective_to: 2021-01-01\n"
    )
    with pytest.raises(
        ConfigFileError, match=r"deadline-rules.yaml:5: rule_sets\[0\]\.efective_to: Extra inputs"
    ):
        RuleBook.from_file(write(tmp_path, text + LIMITS))


def test_overlapping_rule_sets_are_rejected_naming_both(tmp_path: Path) -> None:
    text = (
        "rule_sets:\n  - id: old\n    effective_from: 2020-01-01\n    source: s\n"
        + LIMITS
        + "  - id: new\n    effective_from: 2022-03-24\n    source: s\n"
        + LIMITS
    )
    with pytest.raises(ConfigFileError, match="'old' and 'new' overlap"):
        RuleBook.from_file(write(tmp_path, text))


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "rule_sets:\n  - id: a\n   effective_from: [2020-01-01\n")
    with pytest.raises(ConfigFileError, match=r"deadline-rules.yaml:\d+: not valid YAML") as excinfo:
        RuleBook.from_file(path)
    assert str(path) in str(excinfo.value)


def test_a_missing_rules_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigFileError, match="cannot read") as excinfo:
        RuleBook.from_file(path)
    assert str(path) in str(excinfo.value)
