"""Specification of the national code tables and partner crosswalks: loading, look-ups, versions, errors."""

from __future__ import annotations

import textwrap
from datetime import date
from enum import StrEnum
from pathlib import Path

import pytest

from contracts import codesets
from contracts.codetables import (
    CodeTable,
    CodeTableError,
    CodeTables,
    Crosswalk,
    CrosswalkOutcome,
    UnmappedRule,
    default_code_tables,
    load_code_table,
    load_code_tables,
    load_crosswalk,
)

NATIONAL_CODES = {
    "business_type": ["01", "02", "03"],
    "channel": ["01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "99"],
    "origin_hotline": ["12315", "12365", "12331", "12358", "12330", "12345", "none"],
    "urgency": ["1", "2", "3", "4"],
    "status": [
        "RECEIVED", "DISPATCHED", "ACCEPTED", "NOT_ACCEPTED", "MEDIATING", "MEDIATED", "MEDIATION_TERMINATED",
        "FILED", "NOT_FILED", "EXTENDED", "RETURNED", "TRANSFERRED_OUT", "WITHDRAWN", "CLOSED",
    ],
    "not_accepted_reason": ["1", "2", "3", "4", "5", "6", "7"],
    "satisfaction": ["01", "02", "03"],
    "coordinate_system": ["WGS84", "GCJ02", "CGCS2000"],
    "id_type": ["01", "02", "03", "04", "05", "99"],
    "gender": ["0", "1", "2", "9"],
    "handler_level": ["NATION", "PROVINCE", "CITY", "COUNTY", "STATION"],
}  # fmt: skip

ENUM_OF_TABLE: dict[str, type[StrEnum]] = {
    "business_type": codesets.BusinessType,
    "channel": codesets.Channel,
    "origin_hotline": codesets.OriginHotline,
    "urgency": codesets.Urgency,
    "status": codesets.Status,
    "not_accepted_reason": codesets.NotAcceptedReason,
    "satisfaction": codesets.Satisfaction,
    "coordinate_system": codesets.CoordinateSystem,
    "id_type": codesets.IdType,
    "gender": codesets.Gender,
    "handler_level": codesets.HandlerLevel,
}

CATEGORY_TABLES = ["question_category", "object_category", "industry_category", "entity_type", "tort_type"]

GOOD_TABLE = """\
    table: question_category
    title: 问题类别
    version: "2024.1"
    effective_from: 2019-01-01
    source: test fixture
    hierarchical: true
    code_lengths: [2, 4, 6]
    codes:
      - {code: "01", label: 质量}
      - {code: "0101", parent: "01", label: 产品质量}
      - {code: "010101", parent: "0101", label: 销售失效、变质的产品}
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def load_error(directory: Path) -> CodeTableError:
    with pytest.raises(CodeTableError) as caught:
        load_code_tables(directory)
    return caught.value


# --- the shipped tables ---------------------------------------------------------------------------


@pytest.mark.parametrize(("table_id", "codes"), NATIONAL_CODES.items())
def test_shipped_table_holds_exactly_the_national_codes(table_id: str, codes: list[str]) -> None:
    table = default_code_tables()[table_id]
    assert [entry.code for entry in table.codes] == codes


@pytest.mark.parametrize(("table_id", "enum"), ENUM_OF_TABLE.items())
def test_shipped_table_agrees_with_the_contract_enum(table_id: str, enum: type[StrEnum]) -> None:
    assert {entry.code for entry in default_code_tables()[table_id].codes} == {member.value for member in enum}


def test_shipped_tables_carry_the_chinese_labels() -> None:
    tables = default_code_tables()
    assert tables["business_type"].label("02") == "投诉"
    assert tables["channel"].label("12") == "全国12315平台转件"
    assert tables["status"].label("MEDIATION_TERMINATED") == "终止调解"
    assert tables["gender"].label("9") == "未说明的性别"
    assert tables["handler_level"].label("STATION") == "所"


def test_urgency_carries_its_response_hours() -> None:
    urgency = default_code_tables()["urgency"]
    hours = {entry.code: entry.attrs["response_hours"] for entry in urgency.codes}
    assert hours == {"1": 1, "2": 4, "3": 12, "4": None}


def test_not_accepted_reasons_cite_article_15_of_the_rules() -> None:
    reasons = default_code_tables()["not_accepted_reason"]
    assert "Art. 15" in reasons.source
    assert all(str(entry.attrs["basis"]).startswith("第十五条") for entry in reasons.codes)
    assert reasons.label("5") == "超过三年"


@pytest.mark.parametrize("table_id", CATEGORY_TABLES)
def test_category_tables_say_the_national_table_is_not_public(table_id: str) -> None:
    table = default_code_tables()[table_id]
    assert "not public" in table.source
    assert "working table" in table.source


@pytest.mark.parametrize("table_id", ["question_category", "object_category", "industry_category", "entity_type"])
def test_category_tables_are_hierarchical(table_id: str) -> None:
    assert default_code_tables()[table_id].hierarchical


def test_default_code_tables_are_loaded_once() -> None:
    assert default_code_tables() is default_code_tables()


def test_every_shipped_file_is_in_the_shipped_tables() -> None:
    directory = Path(__file__).resolve().parents[2] / "contracts" / "codes"
    files = {load_code_table(path).table for path in directory.glob("*.yaml")}
    assert files == set(default_code_tables())


# --- hierarchy ------------------------------------------------------------------------------------


def test_path_runs_from_the_top_level_down_to_the_code() -> None:
    questions = default_code_tables()["question_category"]
    path = questions.path("010101")
    assert [(entry.code, entry.label) for entry in path] == [
        ("01", "质量"),
        ("0101", "产品质量"),
        ("010101", "销售失效、变质的产品"),
    ]
    assert questions.level("010101") == 3


def test_children_are_the_codes_directly_under_a_code_in_file_order() -> None:
    objects = default_code_tables()["object_category"]
    assert [entry.code for entry in objects.roots()][:2] == ["01", "02"]
    assert [entry.label for entry in objects.children("0101")][:3] == ["电视机", "空调器", "电冰箱"]
    assert objects.children("010101") == ()


def test_industry_category_follows_gb_t_4754_with_variable_depth() -> None:
    industries = default_code_tables()["industry_category"]
    assert industries.label("62") == "餐饮业"
    catering = industries.get("62")
    assert catering is not None
    assert catering.attrs["section"] == "H"
    assert [entry.code for entry in industries.path("5292")] == ["52", "529", "5292"]
    assert industries.level("01") == 1
    assert industries.children("01") == ()


def test_an_unknown_code_is_absent_and_has_no_label() -> None:
    channel = default_code_tables()["channel"]
    assert "13" not in channel
    assert channel.get("13") is None
    with pytest.raises(KeyError, match="13"):
        channel.label("13")


def test_asking_for_a_table_that_does_not_exist_names_the_known_ones() -> None:
    with pytest.raises(KeyError, match="channel"):
        default_code_tables()["channels"]


# --- files that break the rules -------------------------------------------------------------------


def test_a_missing_parent_fails_naming_file_key_and_line(tmp_path: Path) -> None:
    write(tmp_path, "question_category.yaml", GOOD_TABLE.replace('parent: "0101"', 'parent: "0102"'))
    error = load_error(tmp_path)
    assert error.file.endswith("question_category.yaml")
    assert error.key == "codes[2].parent"
    assert error.line == 11
    assert "'0102'" in str(error)
    assert "question_category.yaml:11: codes[2].parent:" in str(error)


def test_a_duplicate_code_fails_naming_the_second_one(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE + '      - {code: "0101", parent: "01", label: 服务质量}\n')
    error = load_error(tmp_path)
    assert (error.key, error.line) == ("codes[3].code", 12)
    assert "duplicate code '0101'" in str(error)


def test_an_unknown_key_fails_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace("label: 产品质量}", "label: 产品质量, colour: red}"))
    error = load_error(tmp_path)
    assert error.file.endswith("t.yaml")
    assert (error.key, error.line) == ("codes[1].colour", 10)
    assert "unknown key 'colour'" in str(error)
    assert "code '0101'" in str(error)


def test_an_unknown_top_level_key_fails_naming_it(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace("source: test fixture", "source: test fixture\n    owner: me"))
    error = load_error(tmp_path)
    assert (error.key, error.line) == ("owner", 6)


def test_an_impossible_date_fails_naming_key_and_line(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace("effective_from: 2019-01-01", "effective_from: 2019-02-30"))
    error = load_error(tmp_path)
    assert (error.key, error.line) == ("effective_from", 4)
    assert "2019-02-30" in str(error)


def test_a_date_that_is_not_yyyy_mm_dd_fails(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace("effective_from: 2019-01-01", "effective_from: 20190101"))
    error = load_error(tmp_path)
    assert error.key == "effective_from"
    assert "YYYY-MM-DD" in str(error)


def test_an_end_date_not_after_the_start_fails(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace('label: 质量}', "label: 质量, effective_from: 2020-01-01, "
                                                                 "effective_to: 2020-01-01}"))
    error = load_error(tmp_path)
    assert (error.key, error.line) == ("codes[0].effective_to", 9)
    assert "must be later than effective_from" in str(error)


def test_an_unquoted_code_fails_asking_for_quotes(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace('{code: "010101"', "{code: 010101"))
    error = load_error(tmp_path)
    assert error.key == "codes[2].code"
    assert "quoted" in str(error)


def test_a_key_written_twice_fails(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace('title: 问题类别', 'title: 问题类别\n    title: 问题'))
    error = load_error(tmp_path)
    assert (error.key, error.line) == ("title", 3)
    assert "twice" in str(error)


def test_a_child_code_must_begin_with_its_parents(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace('"010101", parent: "0101"', '"020101", parent: "0101"'))
    assert load_error(tmp_path).key == "codes[2].code"


def test_a_code_must_have_the_length_of_its_level(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace('"010101", parent', '"01011", parent'))
    error = load_error(tmp_path)
    assert error.key == "codes[2].code"
    assert "6 characters" in str(error)


def test_a_flat_table_refuses_parents(tmp_path: Path) -> None:
    flat = GOOD_TABLE.replace("hierarchical: true\n    code_lengths: [2, 4, 6]", "hierarchical: false")
    write(tmp_path, "t.yaml", flat)
    error = load_error(tmp_path)
    assert error.key == "codes[1].parent"
    assert "not hierarchical" in str(error)


def test_invalid_yaml_fails_with_its_line(tmp_path: Path) -> None:
    write(tmp_path, "t.yaml", GOOD_TABLE.replace("label: 质量}", "label: 质量"))
    error = load_error(tmp_path)
    assert error.file.endswith("t.yaml")
    assert error.line is not None
    assert "not valid YAML" in str(error)


def test_every_problem_in_every_file_is_reported_at_once(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD_TABLE.replace("label: 产品质量}", "label: 产品质量, colour: red}"))
    write(tmp_path, "b.yaml", GOOD_TABLE.replace("table: question_category", "table: other")
          .replace('parent: "0101"', 'parent: "0102"'))
    issues = load_error(tmp_path).issues
    assert [(Path(issue.file).name, issue.key) for issue in issues] == [
        ("a.yaml", "codes[1].colour"),
        ("b.yaml", "codes[2].parent"),
    ]


def test_a_table_built_in_code_checks_its_parents_too() -> None:
    with pytest.raises(ValueError, match="parent '09'"):
        CodeTable.model_validate({
            "table": "t", "title": "t", "version": "1", "effective_from": "2024-01-01", "source": "test",
            "hierarchical": True, "codes": [{"code": "0901", "parent": "09", "label": "x"}],
        })  # fmt: skip


# --- versions and dates ---------------------------------------------------------------------------

CHANNEL_2019 = """\
    table: channel
    title: 来源渠道
    version: "2019.1"
    effective_from: 2019-01-01
    source: test fixture
    codes:
      - {code: "01", label: 电话}
      - {code: "07", label: 传真}
      - {code: "99", label: 其他}
"""

CHANNEL_2024 = """\
    table: channel
    title: 来源渠道
    version: "2024.1"
    effective_from: 2024-01-01
    source: test fixture
    codes:
      - {code: "01", label: 电话}
      - {code: "12", label: 全国12315平台转件}
      - {code: "99", label: 其他}
"""


@pytest.fixture
def two_versions(tmp_path: Path) -> CodeTables:
    write(tmp_path, "channel.yaml", CHANNEL_2019)
    write(tmp_path, "channel.2024.1.yaml", CHANNEL_2024)
    return load_code_tables(tmp_path)


def test_the_table_under_its_id_is_the_newest_version(two_versions: CodeTables) -> None:
    assert two_versions["channel"].version == "2024.1"
    assert [table.version for table in two_versions.versions("channel")] == ["2019.1", "2024.1"]
    assert len(two_versions) == 1


def test_a_code_is_resolved_in_the_version_that_applied_on_the_day(two_versions: CodeTables) -> None:
    channel = two_versions["channel"]
    assert "07" not in channel
    assert channel.get("07", on=date(2023, 12, 31)) is not None
    assert channel.label("07", on=date(2023, 12, 31)) == "传真"
    assert channel.get("07", on=date(2024, 1, 1)) is None
    assert channel.get("12", on=date(2023, 12, 31)) is None
    assert channel.get("12", on=date(2024, 1, 1)) is not None


def test_no_version_applies_before_the_first_one_starts(two_versions: CodeTables) -> None:
    assert two_versions.version_on("channel", date(2018, 12, 31)) is None
    assert two_versions["channel"].get("01", on=date(2018, 12, 31)) is None
    version = two_versions.version_on("channel", date(2020, 6, 1))
    assert version is not None
    assert version.version == "2019.1"


def test_a_version_with_an_end_date_does_not_apply_from_that_day(tmp_path: Path) -> None:
    write(tmp_path, "channel.yaml", CHANNEL_2019.replace("effective_from: 2019-01-01",
                                                          "effective_from: 2019-01-01\n    effective_to: 2020-01-01"))
    channel = load_code_tables(tmp_path)["channel"]
    assert channel.get("01", on=date(2019, 12, 31)) is not None
    assert channel.get("01", on=date(2020, 1, 1)) is None


def test_a_code_retired_inside_a_version_stops_resolving_on_its_end_date(tmp_path: Path) -> None:
    write(tmp_path, "channel.yaml", CHANNEL_2019.replace("label: 传真}", "label: 传真, effective_to: 2022-07-01}"))
    channel = load_code_tables(tmp_path)["channel"]
    assert channel.get("07", on=date(2022, 6, 30)) is not None
    assert channel.get("07", on=date(2022, 7, 1)) is None
    assert "07" in channel


def test_overlapping_versions_fail_naming_both_files(tmp_path: Path) -> None:
    write(tmp_path, "channel.yaml", CHANNEL_2019.replace("effective_from: 2019-01-01",
                                                          "effective_from: 2019-01-01\n    effective_to: 2025-01-01"))
    write(tmp_path, "channel.2024.1.yaml", CHANNEL_2024)
    error = load_error(tmp_path)
    assert error.file.endswith("channel.2024.1.yaml")
    assert error.key == "effective_from"
    assert "overlap" in str(error)
    assert "channel.yaml" in str(error)


def test_two_versions_starting_on_the_same_day_fail(tmp_path: Path) -> None:
    write(tmp_path, "channel.yaml", CHANNEL_2019)
    write(tmp_path, "channel.2019.2.yaml", CHANNEL_2019.replace('"2019.1"', '"2019.2"'))
    assert load_error(tmp_path).key == "effective_from"


# --- crosswalks -----------------------------------------------------------------------------------

CITY_12345_ENTRIES = [
    {"partner_code": "0", "partner_label": "电话", "code": "01"},
    {"partner_code": "1", "partner_label": "网站", "code": "02"},
    {"partner_code": "2", "partner_label": "微信公众号", "code": "03"},
]

CITY_12345_CHANNEL: dict[str, object] = {
    "crosswalk": "city12345_channel",
    "table": "channel",
    "partner": "city-12345",
    "version": "1",
    "effective_from": "2024-01-01",
    "entries": CITY_12345_ENTRIES,
    "unmapped": "error",
}


def crosswalk(**changes: object) -> Crosswalk:
    return load_crosswalk({**CITY_12345_CHANNEL, **changes})


def test_crosswalk_maps_a_partner_code_to_the_national_code() -> None:
    result = crosswalk().lookup("1")
    assert result.mapped
    assert result.outcome is CrosswalkOutcome.MAPPED
    assert result.code == "02"
    assert result.rule is None


def test_crosswalk_accepts_a_number_or_padded_text_for_a_partner_code() -> None:
    walk = crosswalk()
    assert walk.lookup(0).code == "01"
    assert walk.lookup(" 2 ").code == "03"


def test_unmapped_code_under_error_is_rejected_without_raising() -> None:
    result = crosswalk(unmapped="error").lookup("7")
    assert not result.mapped
    assert result.outcome is CrosswalkOutcome.REJECTED
    assert result.rule is UnmappedRule.ERROR
    assert result.code is None
    assert "'7'" in result.message


def test_unmapped_code_under_default_gets_the_default_code() -> None:
    result = crosswalk(unmapped="default", default="99").lookup("7")
    assert result.outcome is CrosswalkOutcome.DEFAULTED
    assert result.rule is UnmappedRule.DEFAULT
    assert result.code == "99"
    assert not result.mapped


def test_unmapped_code_under_keep_and_flag_is_kept_and_flagged() -> None:
    result = crosswalk(unmapped="keep_and_flag").lookup("7")
    assert result.outcome is CrosswalkOutcome.KEPT
    assert result.flagged
    assert result.rule is UnmappedRule.KEEP_AND_FLAG
    assert result.partner_code == "7"
    assert result.code is None


@pytest.mark.parametrize("value", [None, "", "   ", True, 1.5, {"code": "0"}, ["0"]])
def test_lookup_never_raises_on_input_it_cannot_use(value: object) -> None:
    result = crosswalk().lookup(value)
    assert result.outcome is CrosswalkOutcome.REJECTED


def test_crosswalk_target_that_is_not_a_national_code_fails_naming_the_entry() -> None:
    entries = [*CITY_12345_ENTRIES, {"partner_code": "9", "partner_label": "政务网", "code": "13"}]
    with pytest.raises(CodeTableError) as caught:
        crosswalk(entries=entries)
    assert caught.value.key == "entries[3].code"
    assert "'9'" in str(caught.value)
    assert "'13'" in str(caught.value)


def test_crosswalk_file_error_names_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "city12345_channel.yaml", """\
        crosswalk: city12345_channel
        table: channel
        partner: city-12345
        version: "1"
        effective_from: 2024-01-01
        entries:
          - {partner_code: "0", partner_label: 电话, code: "01"}
          - {partner_code: "5", partner_label: 其他, code: "98"}
        unmapped: default
        default: "99"
    """)
    with pytest.raises(CodeTableError) as caught:
        load_crosswalk(path)
    assert caught.value.file == str(path)
    assert (caught.value.key, caught.value.line) == ("entries[1].code", 8)


def test_crosswalk_loads_from_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, "city12345_channel.yaml", """\
        crosswalk: city12345_channel
        table: channel
        partner: city-12345
        version: "1"
        effective_from: 2024-01-01
        entries:
          - {partner_code: "0", partner_label: 电话, code: "01"}
        unmapped: keep_and_flag
    """)
    assert load_crosswalk(path).lookup("0").code == "01"


def test_crosswalk_target_is_checked_against_the_table_in_its_period(two_versions: CodeTables) -> None:
    old = {**CITY_12345_CHANNEL, "entries": [{"partner_code": "3", "code": "07"}], "effective_from": "2019-06-01"}
    assert load_crosswalk(old, two_versions).lookup("3").code == "07"
    with pytest.raises(CodeTableError, match="'07'"):
        load_crosswalk({**old, "effective_from": "2024-06-01"}, two_versions)


def test_crosswalk_default_must_be_a_national_code() -> None:
    with pytest.raises(CodeTableError) as caught:
        crosswalk(unmapped="default", default="98")
    assert caught.value.key == "default"


def test_crosswalk_with_unmapped_default_needs_a_default() -> None:
    with pytest.raises(CodeTableError) as caught:
        crosswalk(unmapped="default")
    assert caught.value.key == "default"


def test_crosswalk_with_a_partner_code_twice_fails() -> None:
    entries = [*CITY_12345_ENTRIES, {"partner_code": "0", "code": "99"}]
    with pytest.raises(CodeTableError) as caught:
        crosswalk(entries=entries)
    assert caught.value.key == "entries[3].partner_code"


def test_crosswalk_for_an_unknown_table_fails() -> None:
    with pytest.raises(CodeTableError) as caught:
        crosswalk(table="channels")
    assert caught.value.key == "table"


def test_crosswalk_with_an_unknown_unmapped_rule_fails() -> None:
    with pytest.raises(CodeTableError) as caught:
        crosswalk(unmapped="ignore")
    assert caught.value.key == "unmapped"
