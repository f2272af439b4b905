"""The dashboard shows where each adapter's credentials come from: the environment, a demo-generated value, or none."""

from __future__ import annotations

import re

import pytest

from tests.ops.ops_support import OpsGateway
from tests.ops.test_ops_dashboard import _sign_in


def _source(html: str, adapter_id: str) -> str:
    row = re.search(rf'<tr id="adapter-{re.escape(adapter_id)}">(.*?)</tr>', html, re.S)
    assert row, f"no row for {adapter_id}"
    cell = re.search(r'class="credentials" data-source="([a-z_]*)"', row.group(1))
    assert cell, f"no credentials cell for {adapter_id}"
    return cell.group(1)


async def test_each_adapter_row_says_where_its_credentials_come_from(sqlite_gw: OpsGateway,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    await _sign_in(sqlite_gw, "viewer")
    page = (await sqlite_gw.client.get("/ops")).text
    assert "凭据来源" in page and _source(page, "city-12345-rest") == "environment" and "环境变量" in page

    # The value the demo generated under the data dir, put into the environment by the demo: flagged.
    secrets = sqlite_gw.runtime.settings.resolved_data_dir / "secrets"
    secrets.mkdir(parents=True, exist_ok=True)
    (secrets / "partner_emergency_api_key").write_text("made-by-the-demo", encoding="utf-8")
    monkeypatch.setenv("PARTNER_EMERGENCY_API_KEY", "made-by-the-demo")
    monkeypatch.delenv("PARTNER_CREDIT_OUTBOUND_KEY")  # forgotten, and this gateway generates nothing
    page = (await sqlite_gw.client.get("/ops")).text
    assert _source(page, "emergency-command") == "generated" and "自动生成（演示）" in page
    assert _source(page, "credit-supervision") == "missing" and "缺失" in page
    assert _source(page, "city-12345-rest") == "environment"
