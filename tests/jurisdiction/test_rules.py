"""The jurisdiction rules: how they decide (precedence, exclusions, evidence) and how a bad rules file is refused."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.yamldoc import YamlFileError
from gateway.tickets.jurisdiction import JurisdictionRules, screen
from tests.hig_command import Completed, run_hig
from tests.sample_tickets import make_ticket

ROOT = Path(__file__).resolve().parents[2]

TRAFFIC = {"id": "return.traffic", "outcome": "return", "authority": "公安交通管理部门", "return_reason_code": "1",
           "reason": "属于公安交通管理部门职责", "when": {"text": {"any_of": ["红绿灯"], "none_of": ["计价器"]}}}
FOOD = {"id": "accept.food", "outcome": "accept", "reason": "食品安全", "when": {"text": {"any_of": ["过期"]}}}
BEAUTY = {"id": "review.beauty", "outcome": "review", "reason": "职责交叉", "when": {"text": {"any_of": ["医美"]}}}


def rules(*items: dict[str, Any], default: str = "accept") -> JurisdictionRules:
    return JurisdictionRules.model_validate({"default": {"outcome": default}, "rules": list(items)})


def ticket(content: str) -> Any:
    return make_ticket(registration__title="反映问题", registration__content=content)


def test_nothing_matching_takes_the_default_with_no_evidence() -> None:
    decision = screen(ticket("电饭煲无法加热"), rules(TRAFFIC, FOOD))
    assert (decision.outcome, decision.rule_id, decision.evidence) == ("accept", "default", [])
    assert screen(ticket("电饭煲无法加热"), rules(TRAFFIC, default="review")).outcome == "review"


def test_a_return_rule_names_the_authority_the_reason_code_and_where_it_matched() -> None:
    decision = screen(ticket("路口红绿灯坏了"), rules(TRAFFIC, FOOD))
    assert (decision.outcome, decision.rule_id, decision.return_reason_code) == ("return", "return.traffic", "1")
    assert decision.competent_authority == "公安交通管理部门"
    assert [(e.field, e.matched) for e in decision.evidence] == [("registration.content", "红绿灯")]


def test_accept_and_return_together_are_a_conflict_for_review_listing_both() -> None:
    decision = screen(ticket("红绿灯下的小卖部卖过期面包"), rules(TRAFFIC, FOOD))
    assert (decision.outcome, decision.rule_id) == ("review", "conflict")
    assert {e.matched for e in decision.evidence} == {"红绿灯", "过期"}
    assert "return.traffic" in (decision.reason or "") and "accept.food" in (decision.reason or "")


def test_an_exclusion_settles_what_would_be_a_conflict() -> None:
    decision = screen(ticket("出租车在红绿灯路口等候，计价器过期未检定"), rules(TRAFFIC, FOOD))
    assert (decision.outcome, decision.rule_id) == ("accept", "accept.food")


def test_a_review_rule_wins_over_accept_and_return() -> None:
    decision = screen(ticket("医美机构门口红绿灯坏了，卖过期面膜"), rules(TRAFFIC, FOOD, BEAUTY))
    assert (decision.outcome, decision.rule_id) == ("review", "review.beauty")


def test_text_is_matched_normalised_full_width_and_traditional() -> None:
    decision = screen(ticket("路口紅綠燈壞了"), rules(TRAFFIC))
    assert decision.outcome == "return"


def test_codes_match_as_prefixes_and_every_condition_must_hold() -> None:
    ip = {"id": "accept.ip", "outcome": "accept", "reason": "知识产权",
          "when": {"question_codes": ["11"], "business_types": ["03"]}}
    report = make_ticket("report", problem={"question_category_code": "110101"})
    complaint = make_ticket(problem={"question_category_code": "110101"})
    assert screen(report, rules(ip)).rule_id == "accept.ip"
    assert screen(complaint, rules(ip)).rule_id == "default"


def test_the_partner_category_path_is_its_keywords_joined() -> None:
    path_rule = {"id": "return.land", "outcome": "return", "authority": "自然资源部门", "return_reason_code": "1",
                 "reason": "属于自然资源部门职责", "when": {"category_paths": ["城乡建设_集体土地"]}}
    land = make_ticket(registration__keywords=["城乡建设", "集体土地上房屋拆迁与补偿", "安置补偿"])
    assert screen(land, rules(path_rule)).evidence[0].matched == "城乡建设_集体土地上房屋拆迁与补偿_安置补偿"


# -- a bad rules file: refused at start-up naming file, line and key -------------------------------------------

def check_config(tmp_path: Path, rules_text: str) -> Completed:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "jurisdiction.yaml").write_text(rules_text, encoding="utf-8")
    return run_hig("check-config", str(config / "gateway.yaml"))


def rules_file(rule: dict[str, Any]) -> str:
    return yaml.safe_dump({"rules": [FOOD, rule]}, allow_unicode=True, sort_keys=False)


@pytest.mark.parametrize(("rule", "key", "says"), [
    ({**FOOD, "id": "a.x", "when": {"text": {"any_of": ["x"]}, "colour": "red"}}, "rules[1].when.colour",
     "Extra inputs"),
    ({**FOOD, "id": "a.x", "when": {"text": {"patterns": ["(unclosed"]}}}, "rules[1].when.text.patterns",
     "not a valid regular expression"),
    ({**FOOD, "id": "a.x", "outcome": "forward"}, "rules[1].outcome", "'accept', 'return' or 'review'"),
    ({**FOOD, "id": "a.x", "when": {"text": {"patterns": [".*"]}}}, "rules[1].when.text.patterns",
     "would match every text"),
    ({**FOOD, "id": "a.x", "when": {"text": {"any_of": ["  "]}}}, "rules[1].when.text.any_of",
     "would match every text"),
    ({**FOOD, "id": "a.x", "when": {"text": {"patterns": ["."]}}}, "rules[1].when.text", "matches any text at all"),
    ({**FOOD, "id": "a.x", "when": {"text": {"patterns": [r"[\s\S]"]}}}, "rules[1].when.text",
     "matches any text at all"),
    ({**FOOD, "id": "a.x", "when": {"text": {"patterns": [r"\S"]}}}, "rules[1].when.text", "matches any text at all"),
    ({**FOOD, "id": "a.x", "when": {"question_codes": ["77"]}}, "rules[1].when.question_codes",
     "not codes of table question_category"),
    ({**TRAFFIC, "authority": "交通运输部门"}, "rules[1]", "must name its authority"),
])
def test_check_config_names_the_file_line_and_key_of_a_bad_rule(tmp_path: Path, rule: dict[str, Any], key: str,
                                                                 says: str) -> None:
    done = check_config(tmp_path, rules_file(rule))
    assert done.returncode == 2, done.stdout
    rules_path = tmp_path / "config" / "jurisdiction.yaml"
    line = next(i for i, text in enumerate(rules_path.read_text(encoding="utf-8").splitlines(), 1)
                if text.startswith("- id: a.x") or text.startswith("- id: return.traffic"))
    assert f"{rules_path}:" in done.stderr
    assert key in done.stderr and says in done.stderr, done.stderr
    reported = int(done.stderr.split(f"{rules_path}:")[1].split(":")[0])
    assert reported >= line


def test_the_rules_file_is_read_by_the_loader_with_every_problem_listed(tmp_path: Path) -> None:
    bad = tmp_path / "jurisdiction.yaml"
    bad.write_text(yaml.safe_dump({"rules": [FOOD, FOOD]}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(YamlFileError, match="rule ids must be unique"):
        JurisdictionRules.from_file(bad)


def test_the_shipped_rules_pass_check_config() -> None:
    done = run_hig("check-config")
    assert done.returncode == 0, done.stderr
    assert "jurisdiction rules" in done.stdout
