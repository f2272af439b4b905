"""`python main.py tickets links list | confirm | dismiss` on the configured store: shown, decided on both, audited."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from gateway.config import load_settings
from gateway.runtime import Runtime
from tests.ops.ops_support import city_complaint
from tests.ops.test_ops_cli import _audit, _config, _main


def _seed_duplicates(gateway_yaml: Path) -> tuple[str, str]:
    """The city food complaint taken twice under two numbers (the consumer called twice): linked at intake."""

    async def seed() -> tuple[str, str]:
        runtime = Runtime.build(load_settings(gateway_yaml))
        await runtime.start(workers=False, pollers=False)
        try:
            ids = []
            for no in ("KL-LINK-1", "KL-LINK-2"):
                payload = city_complaint(no)
                outcome = await runtime.intake.accept("city-12345-rest", payload, raw_body=json.dumps(payload)
                                                      .encode(), content_type="application/json")
                assert outcome.ticket_id
                ids.append(outcome.ticket_id)
            return ids[0], ids[1]
        finally:
            await runtime.stop()

    return asyncio.run(seed())


def test_links_are_listed_confirmed_and_dismissed_on_both_tickets_with_an_audit(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    first, second = _seed_duplicates(gateway_yaml)

    listed = _main("tickets", "links", "list", second, "--config", str(gateway_yaml))
    assert listed.returncode == 0, listed.stderr
    header, row, total = listed.stdout.strip().splitlines()
    assert header.split() == ["ticket_id", "关联工单", "adapter", "对接系统", "source_no", "来源工单号", "score",
                              "评分", "state", "状态", "decided_by", "决定人", "reasons", "依据"]
    assert row.split()[:3] == [first, "city-12345-rest", "KL-LINK-1"] and "同一投诉人（联系电话相同）" in row
    assert row.split()[4:7] == ["linked", "待确认", "-"]  # not decided yet
    assert total == "1 link(s) 共 1 条"

    confirmed = _main("tickets", "links", "confirm", second, first, "--note", "同一来电人重复来电",
                      "--config", str(gateway_yaml), "--json")
    assert confirmed.returncode == 0, confirmed.stderr
    result = json.loads(confirmed.stdout)
    assert (result["link"]["state"], result["back"]["state"]) == ("confirmed", "confirmed")

    dismissed = _main("tickets", "links", "dismiss", first, second, "--config", str(gateway_yaml), "--json")
    assert dismissed.returncode == 0, dismissed.stderr
    shown = json.loads(_main("tickets", "links", "list", second, "--config", str(gateway_yaml), "--json").stdout)
    assert [(k["ticket_id"], k["state"]) for k in shown] == [(first, "dismissed")]

    actions = [(action, ids) for _, action, ids in _audit(gateway_yaml)]
    assert ("link.confirm", (second, first)) in actions and ("link.dismiss", (first, second)) in actions


def test_a_link_that_does_not_exist_is_refused_naming_the_field(tmp_path: Path) -> None:
    gateway_yaml = _config(tmp_path)
    first, _ = _seed_duplicates(gateway_yaml)
    refused = _main("tickets", "links", "confirm", first, "01J00000000000000000000000", "--config", str(gateway_yaml))
    assert refused.returncode == 1 and '"field": "linked_ticket_id"' in refused.stderr
    missing = _main("tickets", "links", "list", "01J00000000000000000000000", "--config", str(gateway_yaml))
    assert missing.returncode == 1 and '"field": "ticket_id"' in missing.stderr
