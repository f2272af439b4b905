"""A spec is checked when it is loaded: each mistake is named by file, line and key, all of them at once."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from mapping import SpecError, load_spec, load_specs
from tests.mapping.mapping_support import HEADER, MINIMAL_FIELDS, write_spec


def problems_of(tmp_path: Path, fields: str = "", extra: str = "", crosswalks: dict[str, str] | None = None,
                name: str = "demo-rest", header: str = HEADER) -> list[str]:
    fields = textwrap.indent(textwrap.dedent(fields), "  ")
    body = header + textwrap.dedent(extra) + "fields:\n" + MINIMAL_FIELDS + fields
    path = write_spec(tmp_path, body, crosswalks, name=name)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    return caught.value.problems


def only(problems: list[str]) -> str:
    assert len(problems) == 1, problems
    return problems[0]


def test_an_unknown_target_field_is_named_with_its_line_and_a_suggestion(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "complainant.phones: tel\n"))
    assert re.match(r".*/demo-rest\.yaml:12: fields\.complainant\.phones: unknown target field", problem)
    assert "did you mean complainant.phone" in problem


def test_a_target_inside_a_group_is_checked_too(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "occurrence.location.latitude: lat\n"))
    assert "fields.occurrence.location.latitude: unknown target field" in problem


def test_fields_the_gateway_sets_itself_cannot_be_mapped(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "ticket_id: id\n"))
    assert "fields.ticket_id: ticket_id cannot be mapped" in problem


def test_a_group_is_mapped_field_by_field(tmp_path: Path) -> None:
    assert "is a group" in only(problems_of(tmp_path, "complainant: tsfxx\n"))


def test_an_unknown_code_table_is_named(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "classification.urgency: {path: l, transforms: [{code: urgent_levels}]}\n"))
    assert ":12: fields.classification.urgency.transforms[0]" in problem
    assert "unknown code table 'urgent_levels'" in problem


def test_an_unknown_crosswalk_is_named(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "classification.urgency: {path: level, transforms: [{lookup: levels}]}\n"))
    assert "unknown crosswalk 'levels'" in problem


@pytest.mark.parametrize("path", ["tsfxx..xm", "files[x].url", ".xm", "tsfxx.", "a[0]b"])
def test_a_malformed_path_is_named(tmp_path: Path, path: str) -> None:
    problem = only(problems_of(tmp_path, f"complainant.name: {{path: '{path}'}}\n"))
    assert ":12: fields.complainant.name.path: path" in problem


def test_an_unknown_transform_is_named_with_the_known_ones(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "complainant.name: {path: xm, transforms: [trim, strip]}\n"))
    assert "fields.complainant.name.transforms[1]: unknown transform 'strip'; known: trim" in problem


@pytest.mark.parametrize(
    ("transform", "message"),
    [
        ("{truncate: many}", "truncate takes the largest number of characters"),
        ("{datetime: ['dd/mm/yyyy']}", "neither a strptime pattern"),
        ("{fold: {columns: 2}}", "transform fold has no option 'columns'"),
        ("{region_by_name: {within: 火星}}", "within: no region is named"),
        ("{split: _, levels: 0}", "levels must be a positive whole number"),
        ("{extract: '('}", "extract: not a regular expression"),
    ],
)
def test_a_transform_written_wrongly_is_named(tmp_path: Path, transform: str, message: str) -> None:
    problem = only(problems_of(tmp_path, f"registration.title: {{path: t, transforms: [{transform}]}}\n"))
    assert ":12: fields.registration.title.transforms[0]" in problem
    assert message in problem


def test_a_constant_must_be_a_valid_value_of_its_target(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "classification.urgency: {const: '5'}\n"))
    assert "fields.classification.urgency.const: '5' is not a valid classification.urgency" in problem


def test_a_crosswalk_must_give_codes_of_the_targets_table(tmp_path: Path) -> None:
    crosswalk = """\
        crosswalk: demo_level
        table: urgency
        partner: demo-partner
        version: "1"
        effective_from: 2024-01-01
        entries:
          - {partner_code: I, code: "1"}
    """
    problems = problems_of(tmp_path, "complainant.gender: {path: level, transforms: [{lookup: demo_level}]}\n",
                           crosswalks={"level.yaml": crosswalk})
    assert "crosswalk demo_level gives codes of table urgency, but complainant.gender takes codes of table gender" in (
        only(problems)
    )


def test_a_broken_crosswalk_file_is_named_by_its_own_file_and_line(tmp_path: Path) -> None:
    crosswalk = """\
        crosswalk: demo_level
        table: urgency
        partner: demo-partner
        version: "1"
        effective_from: 2024-01-01
        entries:
          - {partner_code: I, code: "1"}
          - {partner_code: II, code: "9"}
    """
    problem = only(problems_of(tmp_path, crosswalks={"level.yaml": crosswalk}))
    assert re.match(r".*crosswalks/demo-partner/level\.yaml:8: entries\[1\]\.code: .*'9'", problem)


def test_a_target_said_twice_is_refused(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "complainant.name: xm\ncomplainant.name: name\n"))
    assert ":13: fields.complainant.name: key appears twice (first on line 12)" in problem


def test_yes_and_no_are_not_paths(tmp_path: Path) -> None:
    assert "quote the path" in only(problems_of(tmp_path, "complainant.name: no\n"))


def test_the_adapter_id_is_the_file_name(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, name="other-rest"))
    assert "adapter_id: adapter_id 'demo-rest' must match the file name other-rest.yaml" in problem


def test_a_return_rule_needs_a_national_reason_code(tmp_path: Path) -> None:
    extra = """\
        return_when:
          - when: {path: type, in: [建议]}
            reason_code: "8"
            reason: 建议不属于投诉举报
    """
    assert ":7: return_when[0].reason_code: reason_code is a national not-accepted reason" in only(
        problems_of(tmp_path, extra=extra)
    )


def test_a_condition_written_wrongly_is_named(tmp_path: Path) -> None:
    problem = only(problems_of(tmp_path, "complainant.anonymous: {const: true, when: {path: xm, missing: true}}\n"))
    assert "fields.complainant.anonymous.when.missing: unknown key 'missing' in a condition" in problem


def test_the_reverse_map_gives_a_code_for_every_national_status(tmp_path: Path) -> None:
    extra = """\
        reverse:
          status:
            target: handleStatus
            map: {RECEIVED: "0", CLOSED: "2", SOLVED: "9"}
    """
    problems = problems_of(tmp_path, extra=extra)
    assert any("reverse.status.map.SOLVED: 'SOLVED' is not a national status" in p for p in problems)
    assert any("every national status needs a partner code; missing: DISPATCHED, ACCEPTED" in p for p in problems)


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    problems = problems_of(
        tmp_path, "complainant.phones: tel\nregistration.title: {path: t, transforms: [shout]}\n",
        header=HEADER.replace("spec_version: 1", "spec_version: 2"),
    )
    assert len(problems) == 3
    assert [p.split(": ", 1)[1].split(":")[0] for p in problems] == [
        "spec_version", "fields.complainant.phones", "fields.registration.title.transforms[0]"
    ]


def test_not_valid_yaml_names_its_line(tmp_path: Path) -> None:
    path = write_spec(tmp_path, HEADER + "fields:\n  complainant.name: [xm\n")
    with pytest.raises(SpecError, match=r"demo-rest\.yaml:\d+: not valid YAML"):
        load_spec(path)


def test_loading_a_folder_reports_the_problems_of_every_file(tmp_path: Path) -> None:
    write_spec(tmp_path, HEADER + "fields:\n" + MINIMAL_FIELDS + "  complainant.phones: tel\n")
    write_spec(tmp_path, HEADER.replace("demo-rest", "demo-soap") + "fields:\n" + MINIMAL_FIELDS
               + "  complainant.mobile: tel\n", name="demo-soap")
    with pytest.raises(SpecError) as caught:
        load_specs(tmp_path)
    assert len(caught.value.problems) == 2


def test_the_shipped_specs_load() -> None:
    assert len(load_specs()) == 6
