"""The shipped jurisdiction rules against the labelled set: every outcome exactly, precision and recall printed.

Run: .venv/bin/python -m pytest tests/jurisdiction/test_labelled.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.ticket import Ticket
from gateway.tickets.jurisdiction import JurisdictionRules, screen
from tests.sample_tickets import ticket_data

REPO = Path(__file__).resolve().parents[2]
LABELLED = Path(__file__).with_name("labelled.yaml")
OUTCOMES = ("accept", "return", "review")


def _items() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = yaml.safe_load(LABELLED.read_text(encoding="utf-8"))
    return items


def labelled_ticket(item: dict[str, Any]) -> Ticket:
    """A ticket as the city 12345 line sends it, carrying the labelled item's matter."""
    kind = {"01": "enquiry", "02": "complaint", "03": "report"}[item.get("business_type", "02")]
    data = ticket_data(kind, no=f"JUR-{item['id']}")
    data["registration"]["title"] = item["title"]
    data["registration"]["content"] = item["content"]
    if kind == "complaint":
        data["registration"]["request"] = item.get("request", "请依法处理")
    else:
        data["registration"].pop("request", None)
    if item.get("keywords"):
        data["registration"]["keywords"] = item["keywords"]
    respondent = item.get("respondent")
    data["respondent"] = dict(respondent) if respondent else {}
    data["subject"] = {}
    if item.get("question_code"):
        data["problem"] = {"question_category_code": item["question_code"]}
    return Ticket.model_validate(data)


@pytest.fixture(scope="module")
def rules() -> JurisdictionRules:
    return JurisdictionRules.from_file(REPO / "config" / "jurisdiction.yaml")


def test_the_labelled_set_is_big_enough_and_its_ids_unique() -> None:
    items = _items()
    counts = {o: sum(1 for i in items if i["expect"] == o) for o in OUTCOMES}
    assert counts["return"] >= 20 and counts["accept"] >= 20 and counts["review"] >= 10, counts
    assert len({i["id"] for i in items}) == len(items)
    assert [i["id"] for i in items if not i.get("rule")] == []  # every ticket names the rule that decides it


def precision_recall(pairs: list[tuple[str, str]]) -> dict[str, tuple[float, float, int]]:
    """Per outcome: (precision, recall, labelled count) of (expected, decided) pairs."""
    table = {}
    for outcome in OUTCOMES:
        decided = sum(1 for _, d in pairs if d == outcome)
        labelled = sum(1 for e, _ in pairs if e == outcome)
        right = sum(1 for e, d in pairs if e == d == outcome)
        table[outcome] = (right / decided if decided else 1.0, right / labelled if labelled else 1.0, labelled)
    return table


def test_every_labelled_ticket_gets_its_labelled_outcome(rules: JurisdictionRules) -> None:
    pairs: list[tuple[str, str]] = []
    wrong: list[str] = []
    for item in _items():
        decision = screen(labelled_ticket(item), rules)
        pairs.append((item["expect"], decision.outcome))
        if decision.outcome != item["expect"]:
            found = ", ".join(f"{e.field}={e.matched}" for e in decision.evidence) or "-"
            wrong.append(f"{item['id']} {item['title']}: expected {item['expect']} ({item['why']}), "
                         f"got {decision.outcome} by {decision.rule_id} [{found}]")
    print(f"\njurisdiction screen on {len(pairs)} labelled tickets ({LABELLED.relative_to(REPO)}):")
    for outcome, (precision, recall, labelled) in precision_recall(pairs).items():
        print(f"  {outcome:<7} labelled {labelled:>3}  precision {precision:.2f}  recall {recall:.2f}")
    assert not wrong, "\n".join(wrong)


def test_every_labelled_ticket_is_decided_by_its_labelled_rule(rules: JurisdictionRules) -> None:
    """A return rule names the authority the partner and the citizen are told: another return rule firing first
    (a new phrase, a rule moved up) tells them another one, with the outcome unchanged."""
    wrong = []
    for item in _items():
        decision = screen(labelled_ticket(item), rules)
        if decision.rule_id != item["rule"]:
            found = ", ".join(f"{e.field}={e.matched}" for e in decision.evidence) or "-"
            wrong.append(f"{item['id']} {item['title']}: expected rule {item['rule']} ({item['why']}), "
                         f"decided by {decision.rule_id} [{found}]")
    assert not wrong, "\n".join(wrong)


def test_a_return_names_its_authority_and_reason_code(rules: JurisdictionRules) -> None:
    for item in _items():
        decision = screen(labelled_ticket(item), rules)
        if decision.outcome == "return":
            assert decision.competent_authority and decision.competent_authority in (decision.reason or "")
            assert decision.return_reason_code == "1"
            assert decision.evidence, item["id"]
