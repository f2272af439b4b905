"""Handlers for the whole province: the table generated from GB/T 2260, the lookup, and never a silent province."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from adapters.loading import load_adapters, mapping_specs_for
from contracts.codesets import HandlerLevel
from contracts.yamldoc import YamlFileError
from gateway.store.sqlite import SqliteStore
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar
from gateway.tickets.handlers import (
    Handlers,
    OrganisationTable,
    generate_organisations,
    load_organisations,
    render_organisations,
)
from gateway.tickets.intake import IntakeService
from gateway.tickets.routing import Router
from simulators.peer import encode_json
from tests.adapters.adapter_support import SPECS_DIR, serve_gateway
from tests.hig_command import Completed, run_hig
from tests.sample_tickets import make_ticket

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config"
CITY_FIXTURE = ROOT / "mapping" / "fixtures" / "city-12345-rest" / "01-food-complaint.json"

# The demo's table before the province-wide one: 黔东南's bodies and the province only (what the issue met).
QIANDONGNAN_ONLY = """\
organisations:
  - {code: "SJJ-520000", name: 贵州省市场监督管理局, level: PROVINCE, region_code: "520000"}
  - {code: "SJJ-522600", name: 黔东南州市场监督管理局, level: CITY, region_code: "522600", parent: "SJJ-520000"}
  - {code: "SJJ-522601", name: 凯里市市场监督管理局, level: COUNTY, region_code: "522601", parent: "SJJ-522600"}
"""

QIANNAN_ADAPTER = """\
# 黔南州12345 (REST/JSON), added as docs/integrators.md says.
id: qiannan-12345-rest
kind: rest
partner_system: qiannan-12345
region_code: "522700"
mapping_spec: specs/qiannan-12345-rest.yaml
push: true
auth:
  api_key_env: PARTNER_QIANNAN12345_API_KEY
callback:
  url: http://127.0.0.1:9/callbacks
  secret_env: PARTNER_QIANNAN12345_CALLBACK_SECRET
"""


def duyun_ticket(number: str) -> tuple[dict[str, object], bytes]:
    """A city-12345 complaint about a shop in 都匀市 (522701)."""
    payload = json.loads(CITY_FIXTURE.read_bytes())
    payload.update(hotlineNo=number, areaCode="522701", areaName="都匀市", eventAddress="都匀市剑江中路18号百货超市",
                   appealContent="市民反映在都匀市剑江中路百货超市购买的酸奶已过保质期，要求退款并赔偿。")
    payload["respondent"] = {"name": "都匀市百货超市有限公司", "address": "都匀市剑江中路18号"}
    return payload, encode_json(payload)


def add_qiannan_adapter(adapters_dir: Path) -> Path:
    """Steps 2 and 3 of docs/integrators.md: the adapter file and its mapping spec (copied from the city's)."""
    specs = adapters_dir / "specs"
    specs.mkdir(parents=True, exist_ok=True)
    spec = (SPECS_DIR / "city-12345-rest.yaml").read_text(encoding="utf-8")
    spec = spec.replace("adapter_id: city-12345-rest", "adapter_id: qiannan-12345-rest")
    spec = spec.replace("source_system: city-12345", "source_system: qiannan-12345")
    (specs / "qiannan-12345-rest.yaml").write_text(spec, encoding="utf-8")
    shutil.copytree(SPECS_DIR / "crosswalks" / "city-12345", specs / "crosswalks" / "qiannan-12345")
    adapter = adapters_dir / "qiannan-12345-rest.yaml"
    adapter.write_text(QIANNAN_ADAPTER, encoding="utf-8")
    return adapter


def check_config(gateway_yaml: Path) -> Completed:
    return run_hig("check-config", str(gateway_yaml))


@pytest.fixture(scope="module")
def guizhou() -> Handlers:
    return Handlers(load_organisations(CONFIG / "organisations.yaml"), "522600")


# -- the generated table ------------------------------------------------------------------------------------
def test_the_committed_table_is_what_the_generator_makes_now() -> None:
    done = subprocess.run([sys.executable, "main.py", "organisations", "generate", "--province", "520000"],
                          cwd=ROOT, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    committed = (CONFIG / "organisations-520000.yaml").read_bytes()
    assert done.stdout.decode("utf-8") == committed.decode("utf-8"), (
        "config/organisations-520000.yaml is stale: python main.py organisations generate --province 520000 "
        "--output config/organisations-520000.yaml")
    assert render_organisations("520000") == committed.decode("utf-8")


def test_every_prefecture_and_county_of_guizhou_has_a_bureau_under_the_one_above() -> None:
    table = {o.code: o for o in generate_organisations("520000").organisations}
    assert len(table) == 1 + 9 + 88  # the province, its 9 prefectures and 88 county-level units
    assert table["SJJ-520000"].name == "贵州省市场监督管理局" and table["SJJ-520000"].parent is None
    prefecture, county = table["SJJ-522700"], table["SJJ-522701"]
    assert (prefecture.name, prefecture.level, prefecture.parent) == (
        "黔南布依族苗族自治州市场监督管理局", HandlerLevel.CITY, "SJJ-520000")
    assert (county.name, county.level, county.parent) == ("都匀市市场监督管理局", HandlerLevel.COUNTY, "SJJ-522700")
    for org in table.values():
        if org.level is HandlerLevel.COUNTY:
            assert table[org.parent or ""].level is HandlerLevel.CITY, org


@pytest.mark.parametrize(("code", "name"), [
    ("SJJ-520102", "贵阳市南明区市场监督管理局"),  # a city's district carries the city's name
    ("SJJ-520203", "六枝特区市场监督管理局"),
    ("SJJ-522732", "三都水族自治县市场监督管理局"),
    ("SJJ-520382", "仁怀市市场监督管理局"),
])
def test_bureaus_are_named_as_the_bodies_call_themselves(code: str, name: str) -> None:
    assert {o.code: o.name for o in generate_organisations("520000").organisations}[code] == name


def test_the_generator_refuses_a_region_that_is_not_a_province() -> None:
    done = run_hig("organisations", "generate", "--province", "522700")
    assert done.returncode == 2
    assert "not a province-level region" in done.stderr


# -- combining the hand-configured file and the generated one -----------------------------------------------
def test_the_demo_table_keeps_its_codes_and_adds_stations_to_the_generated_bureaus(guizhou: Handlers) -> None:
    by_code = {o.code: o for o in guizhou.organisations}
    assert {"SJJ-520000", "SJJ-522600", "SJJ-522622", "SJJ-522701", "SJS-522601-01", "SJS-522625-01"} <= set(by_code)
    assert by_code["SJS-522625-01"].parent == "SJJ-522625"


def test_a_code_defined_again_beside_the_generated_table_names_both_places(tmp_path: Path) -> None:
    shutil.copy(CONFIG / "organisations-520000.yaml", tmp_path)
    (tmp_path / "organisations.yaml").write_text(
        "include: [organisations-520000.yaml]\norganisations:\n"
        '  - {code: "SJJ-522701", name: 都匀市局, level: COUNTY, region_code: "522701"}\n', encoding="utf-8")
    with pytest.raises(YamlFileError) as error:
        load_organisations(tmp_path / "organisations.yaml")
    (problem,) = error.value.problems
    assert problem.startswith(f"{tmp_path / 'organisations.yaml'}:3: organisations[0].code: SJJ-522701 is already "
                              f"defined at {tmp_path / 'organisations-520000.yaml'}:")


def test_a_missing_include_and_an_unknown_parent_are_named_with_file_line_and_key(tmp_path: Path) -> None:
    (tmp_path / "organisations.yaml").write_text(
        "include:\n  - organisations-520000.yaml\norganisations:\n"
        '  - {code: "SJS-522701-01", name: 都匀市市场监督管理局广惠市场监督管理所, level: STATION,\n'
        '     region_code: "522701", parent: "SJJ-522701", areas: [广惠街道]}\n', encoding="utf-8")
    with pytest.raises(YamlFileError) as error:
        load_organisations(tmp_path / "organisations.yaml")
    missing, parent = error.value.problems
    assert missing.startswith(f"{tmp_path / 'organisations.yaml'}:2: include[0]: no organisations file at")
    assert parent == f"{tmp_path / 'organisations.yaml'}:5: organisations[0].parent: unknown parent organisation " \
                     "SJJ-522701"


# -- the lookup ---------------------------------------------------------------------------------------------
def test_a_ticket_from_duyun_is_handled_by_the_duyun_bureau(guizhou: Handlers) -> None:
    ticket = make_ticket(respondent__operating_region_code="522701", respondent__operating_address="都匀市剑江中路")
    routed = guizhou.assign(ticket)
    assert (routed.routing.handler_org_code, routed.routing.handler_org_name, routed.routing.handler_level) == (
        "SJJ-522701", "都匀市市场监督管理局", HandlerLevel.COUNTY)
    assert routed.routing.warnings == []


def test_a_region_without_a_bureau_below_the_province_gets_the_province_with_a_warning_and_a_log_line(
        caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    (tmp_path / "organisations.yaml").write_text(QIANDONGNAN_ONLY, encoding="utf-8")
    sparse = Handlers(load_organisations(tmp_path / "organisations.yaml"), "522600")
    ticket = make_ticket(respondent__operating_region_code="522701", respondent__operating_address="都匀市剑江中路")
    with caplog.at_level(logging.WARNING, logger="gateway.tickets.handlers"):
        routed = sparse.assign(ticket)
    assert routed.routing.handler_level is HandlerLevel.PROVINCE
    (warning,) = routed.routing.warnings
    assert "522701" in warning and "贵州省市场监督管理局" in warning
    (record,) = caplog.records
    assert (record.getMessage(), record.ticket_id, record.region_code) == (  # type: ignore[attr-defined]
        "no handler below the province", ticket.ticket_id, "522701")


def test_a_ticket_naming_only_the_province_goes_to_the_province_without_a_warning(guizhou: Handlers) -> None:
    ticket = make_ticket(respondent__operating_region_code="520000", respondent__operating_address="贵州省")
    routed = guizhou.assign(ticket)
    assert routed.routing.handler_level is HandlerLevel.PROVINCE and routed.routing.warnings == []


def test_a_business_in_a_province_the_table_does_not_know_is_left_to_the_national_platform(
        guizhou: Handlers) -> None:
    routed = guizhou.assign(make_ticket(respondent__operating_region_code="110105",
                                        respondent__operating_address="北京市朝阳区"))
    assert routed.routing.handler_level is HandlerLevel.NATION and routed.routing.warnings == []


def test_a_table_without_any_organisation_for_the_home_province_warns_rather_than_staying_silent() -> None:
    empty = Handlers(OrganisationTable(organisations=[]), "522600")
    routed = empty.assign(make_ticket(respondent__operating_region_code="522701"))
    assert routed.routing.handler_level is HandlerLevel.NATION
    assert "left to the national platform" in routed.routing.warnings[0]


# -- the warning on a stored ticket, through intake on a real store ------------------------------------------
@pytest.fixture
async def sparse_intake(tmp_path: Path) -> AsyncIterator[IntakeService]:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(CONFIG / "routing.yaml", config)
    (config / "organisations.yaml").write_text(QIANDONGNAN_ONLY, encoding="utf-8")
    configs = {i: c for i, c in load_adapters(CONFIG / "adapters").items() if i == "city-12345-rest"}
    store = SqliteStore(tmp_path / "gateway.db", b"handlers-test-key")
    await store.open()
    yield IntakeService(store, mapping_specs_for(configs), Router.from_files(config / "routing.yaml", "522600"),
                        RuleBook.from_file(), WorkingDayCalendar.from_file())
    await store.close()


async def test_a_stored_ticket_from_a_region_without_a_bureau_carries_the_warning(
        sparse_intake: IntakeService, caplog: pytest.LogCaptureFixture) -> None:
    payload, raw = duyun_ticket(f"KL12345-{time.time_ns()}")
    with caplog.at_level(logging.WARNING, logger="gateway.tickets.handlers"):
        outcome = await sparse_intake.accept("city-12345-rest", payload, raw_body=raw,
                                             content_type="application/json")
    assert outcome.kind == "created" and outcome.ticket_id is not None
    ticket = await sparse_intake.store.get_ticket(outcome.ticket_id)
    assert ticket is not None
    assert (ticket.routing.handler_org_code, ticket.routing.handler_level) == ("SJJ-520000", HandlerLevel.PROVINCE)
    assert len(ticket.routing.warnings) == 1 and "522701" in ticket.routing.warnings[0]
    assert [r.adapter_id for r in caplog.records] == ["city-12345-rest"]  # type: ignore[attr-defined]


# -- check-config: the adapters' regions --------------------------------------------------------------------
def test_check_config_refuses_an_adapter_whose_region_has_no_handler_below_the_province(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    (config / "adapters" / "province-12345-soap.yaml").unlink()  # its region is the whole province
    (config / "organisations.yaml").write_text(QIANDONGNAN_ONLY, encoding="utf-8")
    adapter = add_qiannan_adapter(config / "adapters")

    done = check_config(config / "gateway.yaml")

    assert done.returncode == 2
    (problem,) = [line for line in done.stderr.splitlines() if "region_code" in line]
    assert problem.startswith(f"{adapter}:5: region_code: no market-supervision organisation below the province "
                              "handles 522700 黔南布依族苗族自治州, 522701 都匀市")
    assert "贵州省市场监督管理局" in problem and "organisations generate --province 520000" in problem


def test_check_config_refuses_the_province_hotline_when_a_county_of_the_province_has_no_bureau(
        tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    (config / "organisations.yaml").write_text(QIANDONGNAN_ONLY, encoding="utf-8")

    done = check_config(config / "gateway.yaml")

    assert done.returncode == 2
    (problem,) = [line for line in done.stderr.splitlines() if "region_code" in line]
    assert problem.startswith(f"{config / 'adapters' / 'province-12345-soap.yaml'}:12: region_code: no market-"
                              "supervision organisation below the province handles 520100 贵阳市")
    assert "and 75 more" in problem  # 97 regions below the province; 黔东南's 17 have a handler


# -- the scenario: add 黔南州 by the integrator guide ---------------------------------------------------
def test_after_adding_qiannan_by_the_guide_a_ticket_from_duyun_is_handled_by_the_duyun_bureau(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    add_qiannan_adapter(config / "adapters")
    checked = check_config(config / "gateway.yaml")
    assert checked.returncode == 0, checked.stderr

    adapters_dir = tmp_path / "qiannan-only"
    add_qiannan_adapter(adapters_dir)
    monkeypatch.setenv("PARTNER_QIANNAN12345_API_KEY", "qiannan-key")
    _, raw = duyun_ticket(f"QN12345-{time.time_ns()}")
    with serve_gateway(tmp_path / "data", adapters_dir) as gw:
        response = httpx.post(gw.inbound("qiannan-12345-rest"), content=raw, timeout=10,
                              headers={"X-Api-Key": "qiannan-key", "Content-Type": "application/json"})
        assert response.status_code == 202, response.text
        ticket = gw.run(gw.store.get_ticket(response.json()["ticket_id"]))

    assert ticket is not None and ticket.source.adapter_id == "qiannan-12345-rest"
    assert (ticket.routing.handler_org_name, ticket.routing.handler_level) == ("都匀市市场监督管理局",
                                                                               HandlerLevel.COUNTY)
    assert ticket.routing.warnings == []
