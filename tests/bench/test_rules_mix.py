"""The screening-and-routing benchmark (bench/rest_intake/run.py --rules) stays fair: the gateway "without rules"
loads, keeps every lane and every rule that does not read the ticket's content, and drops the rest; the payloads
exercise the rules and take the path both gateways take (accepted, stored, forwarded).

Nothing here imports bench.common.procs or the benchmark runners: procs sets HIG_PHONE_HASH_KEY in the
environment on import, which the gateways that other tests start would then inherit."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.common import rules_mix
from bench.rest_intake import rules_cost
from gateway.config import load_settings
from gateway.runtime import load_components


def test_the_gateway_without_rules_loads_with_the_same_lanes_and_no_content_rules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    jurisdiction, routing = rules_mix.rules_off_files(tmp_path)
    shipped = load_components(load_settings())
    monkeypatch.setenv("HIG_JURISDICTION_FILE", str(jurisdiction))
    monkeypatch.setenv("HIG_ROUTING_FILE", str(routing))
    off = load_components(load_settings())
    assert off.jurisdiction.rules == [] and off.jurisdiction.default == shipped.jurisdiction.default
    assert shipped.jurisdiction.rules
    kept = {r.rule_id for r in off.router.config.rules}
    dropped = {r.rule_id for r in shipped.router.config.rules} - kept
    assert kept == {"emergency-critical", "enforcement-filed-report", "credit-closed-with-penalty"}
    assert {"emergency-mass-incident", "emergency-food-poisoning", "credit-listed-respondent",
            "credit-repair"} <= dropped
    assert off.router.destinations <= shipped.router.destinations
    assert off.router.organisations == shipped.router.organisations
    written = yaml.safe_load(routing.read_text(encoding="utf-8"))
    assert all(not rules_mix.CONTENT_CONDITIONS & set(r.get("when") or {}) for r in written["rules"])


def test_the_payloads_exercise_the_rules_on_the_path_both_gateways_take() -> None:
    costs = {c.mix: c for c in rules_cost.measure(n=1, repeat=1)}  # refuses a mix the screen does not accept
    fixture, realistic = costs["fixture"], costs["realistic"]
    assert fixture.tickets == 1 and fixture.decided_by_rule == 1 and fixture.routed == 0
    assert realistic.tickets == len(rules_mix.labelled_accepts()) + len(rules_mix.ROUTED)
    assert len(rules_mix.labelled_accepts()) >= 20
    assert realistic.routed == len(rules_mix.ROUTED)
    assert realistic.decided_by_rule >= len(rules_mix.labelled_accepts())


def test_every_request_of_a_mix_is_a_new_ticket() -> None:
    for mix in rules_mix.MIXES:
        numbers = {rules_mix.city_payload(mix, "T", i)["hotlineNo"] for i in range(100)}
        assert len(numbers) == 100
