"""What the screening-and-routing benchmark sends, and the configuration of the gateway it compares against.

Two payload mixes, both city 12345 pushes under a fresh hotlineNo each time (every request a new ticket):
- `fixture`: the REST intake benchmark's own payload (fixture 01, 超市销售过期酸奶), which the shipped screen
  accepts by rule `accept.food` and no content routing rule routes;
- `realistic`: fixture 01 carrying, in turn, the text of each ticket labelled `accept` in the jurisdiction
  screen's labelled set (tests/jurisdiction/labelled.yaml: realistic complaints, reports and enquiries) and
  four matters the shipped routing rules route (mass food poisoning, a gathering of 上百名 members, 信用修复).
  Only tickets the screen accepts, so that both gateways store and forward every one of them (a 退单 or a
  review is another path through intake, not a cost of the rules).

The gateway without rules reads a jurisdiction file with no rules (only the default outcome, accept: the
screen still normalises the text and records its default decision, see `rules_off_files`) and the routing
file with the same lanes and every rule that looks only at the fields routing knew before the content rules
(urgency, business type, status, penalty), i.e. without the rules that read text, credit flags, codes,
amounts or head counts.

Nothing here imports bench.common.procs (it sets HIG_PHONE_HASH_KEY on import), so tests can use it.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml

from bench.common.payloads import city_ticket

REPO = Path(__file__).resolve().parents[2]
LABELLED = REPO / "tests" / "jurisdiction" / "labelled.yaml"
CONFIG = REPO / "config"
Mix = Literal["fixture", "realistic"]
MIXES: tuple[Mix, ...] = ("fixture", "realistic")
_APPEAL_TYPES = {"01": "咨询", "02": "投诉", "03": "举报"}  # mapping/specs/crosswalks/city-12345/appeal-type.yaml
# The routing conditions that read the ticket's content (gateway/tickets/route_rules.py, Condition); a rule
# using none of them is one routing had before (urgency, business type, status, penalty, region).
CONTENT_CONDITIONS = frozenset({"text", "credit_flags", "industry_prefix", "respondent_type", "question_prefix",
                                "object_prefix", "amount_at_least", "people_at_least"})

# Matters the shipped routing rules route (config/routing.yaml), as 12345 writes them (tests/e2e).
ROUTED: tuple[dict[str, str], ...] = (
    {"appealTypeCode": "02", "appealTitle": "学校食堂疑似群体性食物中毒",
     "appealContent": "凯里市某中学食堂今日午餐后，40多人陆续出现呕吐、腹泻，疑似群体性食物中毒，已有学生送医。",
     "appealRequest": "请立即调查食堂"},
    {"appealTypeCode": "02", "appealTitle": "婚宴后多人不适",
     "appealContent": "昨晚在某酒楼参加婚宴的三十余人出现上吐下泻，怀疑食物中毒。",
     "appealRequest": "请调查酒楼食品安全"},
    {"appealTypeCode": "02", "appealTitle": "健身房关门不退预付卡",
     "appealContent": "某健身房突然关门，上百名会员聚集在门口讨说法，要求退还预付卡余额。",
     "appealRequest": "退还预付卡余额"},
    {"appealTypeCode": "01", "appealTitle": "咨询信用修复",
     "appealContent": "我店去年未按时报送年度报告被列入经营异常名录，现已补报，咨询如何申请信用修复。",
     "appealRequest": "告知信用修复办理流程"},
)


@cache
def labelled_accepts() -> tuple[dict[str, str], ...]:
    """The text fields of each labelled `accept` ticket, as city 12345 pushes carry them."""
    items: list[dict[str, Any]] = yaml.safe_load(LABELLED.read_text(encoding="utf-8"))
    found = []
    for item in items:
        if item["expect"] != "accept":
            continue
        code = str(item.get("business_type", "02"))
        found.append({"appealTypeCode": code, "appealTitle": str(item["title"]),
                      "appealContent": str(item["content"]),
                      "appealRequest": str(item.get("request", "请依法处理"))})
    return tuple(found)


@cache
def texts(mix: Mix) -> tuple[dict[str, str], ...]:
    """The text fields each request of a mix carries, in the order they are sent (then again)."""
    if mix == "fixture":
        return ({},)
    return (*labelled_accepts(), *ROUTED)


def city_payload(mix: Mix, tag: str, i: int) -> dict[str, Any]:
    """Request i of a mix: fixture 01 with the mix's i-th text, a new hotlineNo and a consumer of its own."""
    options = texts(mix)
    text = options[i % len(options)]
    payload = {**city_ticket(tag, i), **text}
    if "appealTypeCode" in text:
        payload["appealTypeName"] = _APPEAL_TYPES[text["appealTypeCode"]]
    return payload


def city_body(mix: Mix, tag: str, i: int) -> bytes:
    return json.dumps(city_payload(mix, tag, i), ensure_ascii=False).encode("utf-8")


def rules_off_files(directory: Path) -> tuple[Path, Path]:
    """(jurisdiction file, routing file) for the gateway without screening and content routing, written into
    `directory`. The jurisdiction file keeps the shipped default (accept, same reason) and has no rules: the
    gateway has no setting that turns the screen off, so the screen still runs and records its default
    decision (its fixed cost stays in the comparison; bench/rest_intake/rules_cost.py measures it)."""
    directory.mkdir(parents=True, exist_ok=True)
    shipped = yaml.safe_load((CONFIG / "jurisdiction.yaml").read_text(encoding="utf-8"))
    jurisdiction = directory / "jurisdiction-off.yaml"
    jurisdiction.write_text(yaml.safe_dump({"default": shipped["default"], "rules": []}, allow_unicode=True,
                                           sort_keys=False), encoding="utf-8")
    routing = yaml.safe_load((CONFIG / "routing.yaml").read_text(encoding="utf-8"))
    routing["rules"] = [r for r in routing["rules"] if not CONTENT_CONDITIONS & set(r.get("when") or {})]
    # The organisation table is read relative to the routing file: point at the shipped one.
    routing["organisations_file"] = str(CONFIG / routing.get("organisations_file", "organisations.yaml"))
    routing_file = directory / "routing-off.yaml"
    routing_file.write_text(yaml.safe_dump(routing, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return jurisdiction, routing_file
