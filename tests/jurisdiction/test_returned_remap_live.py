"""A quarantined payload that the jurisdiction screen returns when an operator re-maps it, through a live gateway: the
city hears its 退单 on its real callback receiver, and the quarantine entry is closed with that 退单 (API and page)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.e2e_support import ENVIRONMENT, World, running_world, wait_for
from tests.jurisdiction.test_jurisdiction_live import NOISE, city_callbacks, city_order, dashboard, form_token

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "mapping" / "specs"
ADMIN = {"Authorization": f"Bearer {ENVIRONMENT['HIG_OPS_TOKEN_ADMIN']}"}
OPERATOR = {"Authorization": f"Bearer {ENVIRONMENT['HIG_OPS_TOKEN_OPERATOR']}"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("returned-remap")) as running:
        yield running


def _use_spec(world: World, spec: str) -> None:
    """Point the city adapter at another mapping spec and reload (a spec change applies without a restart)."""
    adapter = world.settings.config_dir / "adapters" / "city-12345-rest.yaml"
    text = adapter.read_text(encoding="utf-8")
    adapter.write_text(re.sub(r"(?m)^mapping_spec: .*$", f"mapping_spec: {spec}", text), encoding="utf-8")
    reloaded = world.client.post(f"{world.gateway_url}/api/v1/admin/reload", headers=ADMIN)
    assert reloaded.status_code == 200, reloaded.text
    assert reloaded.json()["restart_required"] == []


def _quarantined(world: World, number: str, tmp_path: Path) -> str:
    """A noise complaint kept in quarantine: the city's spec, broken, reads its number from a key never sent."""
    specs = tmp_path / "specs"  # with its crosswalks, which a spec finds beside it
    shutil.copytree(SPECS, specs)
    broken = specs / "city-12345-rest.yaml"
    broken.write_text(broken.read_text(encoding="utf-8").replace(
        "source.source_ticket_no: {path: hotlineNo,", "source.source_ticket_no: {path: hotlineNumber,"),
        encoding="utf-8")
    _use_spec(world, str(broken))
    try:
        pushed = world.city.push(city_order(number, *NOISE))
    finally:
        _use_spec(world, "city-12345-rest")  # fixed: a re-map now maps it
    assert pushed.status == 422, pushed.body
    quarantine_id: str = pushed.body["quarantine_id"]
    return quarantine_id


def _entry(world: World, quarantine_id: str) -> dict[str, object]:
    listed = world.client.get(f"{world.gateway_url}/api/v1/quarantine", params={"include_resolved": "true"},
                              headers=OPERATOR)
    assert listed.status_code == 200, listed.text
    [entry] = [q for q in listed.json() if q["quarantine_id"] == quarantine_id]
    found: dict[str, object] = entry
    return found


def test_a_remap_the_screen_returns_closes_its_entry_with_the_return(world: World, tmp_path: Path) -> None:
    number = "KL12345-JUR-REMAP-RET-01"
    quarantine_id = _quarantined(world, number, tmp_path)
    before = _entry(world, quarantine_id)
    assert before["returned"] is False and [e["rule"] for e in before["errors"]] != []  # type: ignore[union-attr]

    with dashboard(world, ENVIRONMENT["HIG_OPS_TOKEN_OPERATOR"]) as browser:
        page = browser.get("/ops/quarantine")
        assert f'id="quarantine-{quarantine_id}"' in page.text
        done = browser.post(f"/ops/quarantine/{quarantine_id}/remap", data={"csrf": form_token(page.text)})
        assert done.status_code == 303 and done.headers["location"].endswith("msg=returned")
        after = browser.get("/ops/quarantine").text

    # The city hears the 退单 on its callback receiver, naming the competent authority.
    callback = wait_for("the 退单 callback", lambda: city_callbacks(world, number) or None, 15)[0]
    assert callback["handleStatus"] == "3" and "生态环境部门" in callback["handleOpinion"]
    # The entry is closed with that outcome: the 退单's notes (reason code, rule, evidence) replace the mapping errors.
    entry = _entry(world, quarantine_id)
    assert entry["returned"] is True and entry["resolved_ticket_id"] is None
    rules = [e["rule"] for e in entry["errors"]]  # type: ignore[union-attr]
    assert rules == ["returned:1", "jurisdiction:return.noise-neighbours"]
    assert "生态环境部门" in str(entry["errors"])
    # The page shows it as 已退单, with no 重新映射 button left.
    row = re.search(rf'<tr id="quarantine-{quarantine_id}">(.*?)</tr>', after, re.S)
    assert row is not None
    assert 'data-state="returned"' in row.group(1) and "已退单" in row.group(1)
    assert "重新映射" not in row.group(1) and "待处理" not in row.group(1)
    # Closed: a second re-map sends nothing again and says so.
    again = world.client.post(f"{world.gateway_url}/api/v1/quarantine/{quarantine_id}/remap", headers=OPERATOR)
    assert again.status_code == 200, again.text
    assert again.json()["outcome"] == "already_returned" and again.json()["ticket_id"] is None
