"""Personal data: viewers see it masked everywhere, operators not a confidential reporter's; no log line shows it."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

from gateway.logs import JsonLineFormatter
from tests.ops.ops_support import COMPLAINANT, OpsGateway, city_complaint, fixture_payload

CLEAR = (COMPLAINANT["name"], "13985012345", "3985012345", "环城西路9号", COMPLAINANT["id_number"], "200109098873")


def _leaks(text: str) -> list[str]:
    return [value for value in CLEAR if value in text]


async def test_a_viewer_sees_names_phones_addresses_and_id_numbers_masked(gw: OpsGateway) -> None:
    outcome = await gw.push(city_complaint("KL-MASK-1", appealContent="来电人王小红，电话13985012345，"
                                           "身份证522601200109098873，反映超市售卖过期酸奶。"))
    search = await gw.get("/api/v1/tickets", "viewer", complainant_phone="13985012345")
    detail = await gw.get(f"/api/v1/tickets/{outcome.ticket_id}", "viewer")
    assert search.status_code == detail.status_code == 200
    assert _leaks(search.text) == [] and _leaks(detail.text) == []
    [found] = search.json()
    assert found["masked"] is True
    assert (found["complainant_name"], found["complainant_phone"]) == ("王**", "+86139****2345")
    complainant = detail.json()["ticket"]["complainant"]
    assert complainant["id_number"] == "522601********3"
    assert complainant["address"].startswith("凯") and set(complainant["address"][1:]) == {"*"}
    assert "139****2345" in detail.json()["ticket"]["registration"]["content"]
    # what is not personal stays readable
    assert detail.json()["ticket"]["respondent"]["name"] == "凯里市惠民生活超市有限公司"
    assert detail.json()["ticket"]["source"]["source_ticket_no"] == "KL-MASK-1"


async def test_an_operator_and_an_admin_see_the_complainant_in_clear(gw: OpsGateway) -> None:
    outcome = await gw.push(city_complaint("KL-MASK-2"))
    for role in ("operator", "admin"):
        detail = (await gw.get(f"/api/v1/tickets/{outcome.ticket_id}", role)).json()
        assert detail["masked"] is False
        assert detail["ticket"]["complainant"]["name"] == COMPLAINANT["name"]
        assert detail["ticket"]["complainant"]["phone"] == "+8613985012345"


async def test_a_confidential_reporters_identity_is_masked_for_operators_too(gw: OpsGateway) -> None:
    outcome = await gw.push(fixture_payload("legacy-registration", "02-12331-food-report"),
                            adapter_id="legacy-registration")
    assert outcome.ticket_id is not None
    ticket = await gw.store.get_ticket(outcome.ticket_id)
    assert ticket is not None
    secret = ticket.model_copy(update={"complainant": ticket.complainant.model_copy(update={"confidential": True})})
    await gw.store.save_ticket(secret, [], expected_revision=ticket.lifecycle.revision)
    name = ticket.complainant.name
    assert name
    operator = (await gw.get(f"/api/v1/tickets/{outcome.ticket_id}", "operator")).json()
    admin = (await gw.get(f"/api/v1/tickets/{outcome.ticket_id}", "admin")).json()
    assert operator["masked"] is True and operator["ticket"]["complainant"]["name"] != name
    assert admin["masked"] is False and admin["ticket"]["complainant"]["name"] == name


async def test_quarantined_values_are_masked_for_a_viewer(gw: OpsGateway) -> None:
    bad = city_complaint("KL-MASK-3", contactIdCard="522601200109098874")  # a wrong check digit
    outcome = await gw.push(bad)
    assert outcome.kind == "quarantined"
    viewer = await gw.get("/api/v1/quarantine", "viewer")
    operator = await gw.get("/api/v1/quarantine", "operator")
    assert "200109098874" not in viewer.text
    assert "522601200109098874" in operator.text


@pytest.fixture
def json_log_lines() -> Iterator[list[str]]:
    """Every log line of the process, formatted exactly as the gateway writes them (JSON, masked)."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    handler.setFormatter(JsonLineFormatter())
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield lines
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_log_lines_of_a_real_intake_are_json_with_ids_and_no_personal_data(sqlite_gw: OpsGateway,
                                                                              json_log_lines: list[str]) -> None:
    stored = await sqlite_gw.push(city_complaint("KL-LOG-1", appealContent="王小红来电13985012345反映酸奶过期"))
    quarantined = await sqlite_gw.push(city_complaint("KL-LOG-2", contactIdCard="522601200109098874"))
    dead = await sqlite_gw.kill_delivery()
    await sqlite_gw.post("/api/v1/deliveries/replay", "operator", {"delivery_ids": [dead]})
    await sqlite_gw.get(f"/api/v1/tickets/{stored.ticket_id}", "admin")

    assert json_log_lines
    entries = [json.loads(line) for line in json_log_lines]  # every line is one JSON object
    assert all("\n" not in line for line in json_log_lines)
    joined = "\n".join(json_log_lines)
    assert _leaks(joined) == [] and "200109098874" not in joined
    [stored_line] = [e for e in entries if e["event"] == "ticket stored" and e.get("ticket_id") == stored.ticket_id]
    assert stored_line["adapter_id"] == "city-12345-rest"
    [quarantine_line] = [e for e in entries if e["event"] == "ticket quarantined"]
    assert quarantine_line["adapter_id"] == "city-12345-rest"
    assert quarantine_line["quarantine_id"] == quarantined.quarantine_id
    [action] = [e for e in entries if e["event"] == "ops action"]
    assert action["ticket_ids"] == [stored.ticket_id] and action["actor"] == "duty-operator"


def test_partner_field_names_of_personal_data_are_masked_in_log_extras() -> None:
    record = logging.LogRecord("gateway", logging.INFO, __file__, 1, "payload refused", None, None)
    record.adapter_id = "province-12345-soap"
    record.fields = {"visitorname": "杨某某", "mobilephone": "13985012345", "idcard": "522601200109098873"}
    line = JsonLineFormatter().format(record)
    assert "杨某某" not in line and "13985012345" not in line and "200109098873" not in line
