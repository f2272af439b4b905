"""What each part of a spec does to a partner's value: paths, transforms, crosswalks, conditions, concatenation."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from mapping import Mapped, Rejected, apply
from tests.mapping.mapping_support import SpecFactory, payload

CST = timezone(timedelta(hours=8))


def mapped(spec: object, data: object) -> Mapped:
    result = apply(spec, data)  # type: ignore[arg-type]
    assert isinstance(result, Mapped), result
    return result


def rejected(spec: object, data: object) -> Rejected:
    result = apply(spec, data)  # type: ignore[arg-type]
    assert isinstance(result, Rejected), result
    return result


@pytest.mark.parametrize(
    "written",
    ["2019/03/16 10:20", "20190316102000", "2019-03-16T10:20:00+08:00", "2019-03-16T02:20:00Z", "2019-03-16 10:20",
     "2019年03月16日 10:20", 1552702800, 1552702800000, "1552702800"],
)
def test_a_time_in_any_listed_format_becomes_china_standard_time(make_spec: SpecFactory, written: object) -> None:
    spec = make_spec("occurrence.occurred_at: {path: when, transforms: [{datetime: [iso, '%Y/%m/%d %H:%M', "
                     "'%Y%m%d%H%M%S', '%Y-%m-%d %H:%M', '%Y年%m月%d日 %H:%M', epoch]}]}")
    occurred = mapped(spec, payload(when=written)).ticket.occurrence.occurred_at
    assert occurred == datetime(2019, 3, 16, 10, 20, tzinfo=CST)
    assert occurred is not None and occurred.utcoffset() == timedelta(hours=8)


def test_a_time_in_no_listed_format_is_an_error_naming_the_source(make_spec: SpecFactory) -> None:
    spec = make_spec("occurrence.occurred_at: {path: when, transforms: [{datetime: ['%Y/%m/%d %H:%M']}]}")
    [error] = rejected(spec, payload(when="16.03.2019")).errors
    assert (error.field, error.rule, error.source_path, error.value) == (
        "occurrence.occurred_at", "invalid_datetime", "when", "16.03.2019"
    )


def test_a_deadline_given_as_a_day_lasts_until_its_end(make_spec: SpecFactory) -> None:
    spec = make_spec("source.source_deadline: {path: due, transforms: [{datetime: {end_of_day: true}}]}")
    deadline = mapped(spec, payload(due="2021-06-23")).ticket.source.source_deadline
    assert deadline == datetime(2021, 6, 23, 23, 59, 59, tzinfo=CST)


@pytest.mark.parametrize(
    ("written", "amount"),
    [("1,200.50", "1200.50"), ("1200.5元", "1200.5"), ("￥8,750.00", "8750.00"), ("人民币3.2万元", "32000.0"),
     ("  596 元 ", "596"), (99, "99"), ("0", "0")],
)
def test_money_is_read_as_partners_write_it(make_spec: SpecFactory, written: object, amount: str) -> None:
    spec = make_spec("subject.amount: {path: sjje, transforms: [money]}")
    assert mapped(spec, payload(sjje=written)).ticket.subject.amount == Decimal(amount)


@pytest.mark.parametrize("written", ["三百元", "1,20,0", "12.5.3", "about 50"])
def test_money_that_is_not_a_number_is_an_error(make_spec: SpecFactory, written: str) -> None:
    spec = make_spec("subject.amount: {path: sjje, transforms: [money]}")
    [error] = rejected(spec, payload(sjje=written)).errors
    assert (error.field, error.rule, error.source_path) == ("subject.amount", "invalid_money", "sjje")


def test_a_negative_amount_breaks_the_contract_at_its_source(make_spec: SpecFactory) -> None:
    spec = make_spec("subject.amount: {path: sjje, transforms: [money]}")
    [error] = rejected(spec, payload(sjje="-500")).errors
    assert (error.field, error.rule, error.source_path, error.value) == (
        "subject.amount", "greater_than_equal", "sjje", "-500"
    )


def test_a_category_path_splits_into_its_levels(make_spec: SpecFactory) -> None:
    spec = make_spec("registration.keywords: {path: questiontype, transforms: [{split: _}]}")
    ticket = mapped(spec, payload(questiontype="市场监管_食品安全_餐饮服务")).ticket
    assert ticket.registration.keywords == ["市场监管", "食品安全", "餐饮服务"]


def test_a_category_path_with_the_wrong_number_of_levels_is_an_error(make_spec: SpecFactory) -> None:
    spec = make_spec("registration.keywords: {path: questiontype, transforms: [{split: _, levels: 3}]}")
    [error] = rejected(spec, payload(questiontype="市场监管_食品安全")).errors
    assert (error.field, error.rule) == ("registration.keywords", "category_levels")


def test_one_level_of_a_category_path_can_be_taken(make_spec: SpecFactory) -> None:
    spec = make_spec("registration.title: {path: questiontype, transforms: [{split: _, index: -1}]}")
    assert mapped(spec, payload(questiontype="市场监管_食品安全_餐饮服务")).ticket.registration.title == "餐饮服务"


REGION_RULE = "occurrence.incident_region_code: {path: area, transforms: [{region_by_name: {within: '522600'}}]}"


@pytest.mark.parametrize(("name", "code"), [("凯里市", "522601"), ("镇远", "522625"), ("黄平县", "522622")])
def test_a_region_name_becomes_its_code(make_spec: SpecFactory, name: str, code: str) -> None:
    spec = make_spec(REGION_RULE)
    assert mapped(spec, payload(area=name)).ticket.occurrence.incident_region_code == code


def test_an_unknown_region_name_is_an_error(make_spec: SpecFactory) -> None:
    [error] = rejected(make_spec(REGION_RULE), payload(area="朝阳区")).errors
    assert (error.field, error.rule, error.source_path) == (
        "occurrence.incident_region_code", "invalid_region_name", "area"
    )


def test_white_space_is_folded_including_ideographic_spaces(make_spec: SpecFactory) -> None:
    spec = make_spec("occurrence.incident_address: {path: addr, transforms: [fold]}")
    ticket = mapped(spec, payload(addr="  凯里市\u3000韶山南路 \n 56号 ")).ticket
    assert ticket.occurrence.incident_address == "凯里市 韶山南路 56号"


def test_folding_can_keep_line_breaks(make_spec: SpecFactory) -> None:
    spec = make_spec("registration.request: {path: req, transforms: [{fold: {lines: true}}]}")
    ticket = mapped(spec, payload(req=" 退货 \n\n\n  退款\t 赔偿 ")).ticket
    assert ticket.registration.request == "退货\n退款 赔偿"


def test_truncation_keeps_the_limit_and_records_a_warning(make_spec: SpecFactory) -> None:
    spec = make_spec("registration.title: {path: title, transforms: [{truncate: 10}]}")
    result = mapped(spec, payload(title="超市销售过期酸奶且拒绝退款赔偿"))
    assert result.ticket.registration.title == "超市销售过期酸奶且拒"
    [warning] = result.warnings
    assert (warning.field, warning.rule, warning.source_path) == ("registration.title", "truncated", "title")


def test_phone_numbers_are_normalised_to_e164(make_spec: SpecFactory) -> None:
    spec = make_spec("complainant.phone: {path: tel, transforms: [phone]}")
    assert mapped(spec, payload(tel="１３９０８５５１２３４")).ticket.complainant.phone == "+8613908551234"
    assert mapped(spec, payload(tel="0855-8274966")).ticket.complainant.phone == "+868558274966"


def test_a_15_digit_id_number_is_upgraded(make_spec: SpecFactory) -> None:
    spec = make_spec("complainant.id_number: {path: sfzh, transforms: [resident_id]}")
    assert mapped(spec, payload(sfzh="522601680515032")).ticket.complainant.id_number == "522601196805150322"


def test_one_code_field_fills_the_field_of_its_kind(make_spec: SpecFactory) -> None:
    spec = make_spec("""\
        respondent.uscc: {path: code, transforms: [{enterprise_code: uscc}]}
        respondent.legacy_registration_no: {path: code, transforms: [{enterprise_code: registration_no}]}
        respondent.legacy_org_code: {path: code, transforms: [{enterprise_code: org_code}]}
    """)

    def codes(value: str) -> tuple[str | None, str | None, str | None]:
        respondent = mapped(spec, payload(code=value)).ticket.respondent
        return respondent.uscc, respondent.legacy_registration_no, respondent.legacy_org_code

    assert codes("N2522601MA6J7W8K97") == ("N2522601MA6J7W8K97", None, None)
    assert codes("522601000012348") == (None, "522601000012348", None)
    assert codes("21440158-X") == (None, None, "21440158X")
    assert codes("无") == (None, None, None)


def test_a_bad_code_is_one_error_however_many_fields_read_it(make_spec: SpecFactory) -> None:
    spec = make_spec("""\
        respondent.uscc: {path: code, transforms: [{enterprise_code: uscc}]}
        respondent.legacy_registration_no: {path: code, transforms: [{enterprise_code: registration_no}]}
    """)
    [error] = rejected(spec, payload(code="91522627MA6H0TR51X")).errors
    assert (error.field, error.rule, error.source_path) == ("respondent.uscc", "invalid_uscc", "code")


CROSSWALK = """\
    crosswalk: demo_urgency
    table: urgency
    partner: demo-partner
    version: "1"
    effective_from: 2024-01-01
    entries:
      - {partner_code: "0", partner_label: 特急, code: "1"}
      - {partner_code: "1", partner_label: 紧急, code: "2"}
    unmapped: %s
"""
URGENCY_RULE = "classification.urgency: {path: level, transforms: [{lookup: demo_urgency}]}"


def test_a_crosswalk_maps_partner_codes_to_national_codes(make_spec: SpecFactory) -> None:
    spec = make_spec(URGENCY_RULE, crosswalks={"urgency.yaml": CROSSWALK % "error"})
    assert mapped(spec, payload(level=1)).ticket.classification.urgency.value == "2"


def test_an_unmapped_code_can_be_an_error(make_spec: SpecFactory) -> None:
    spec = make_spec(URGENCY_RULE, crosswalks={"urgency.yaml": CROSSWALK % "error"})
    [error] = rejected(spec, payload(level="7")).errors
    assert (error.field, error.rule, error.source_path, error.value) == (
        "classification.urgency", "unmapped_code", "level", "7"
    )


def test_an_unmapped_code_can_take_a_default_with_a_warning(make_spec: SpecFactory) -> None:
    spec = make_spec(URGENCY_RULE, crosswalks={"urgency.yaml": CROSSWALK % "default\n    default: '4'"})
    result = mapped(spec, payload(level="7"))
    assert result.ticket.classification.urgency.value == "4"
    assert [(w.field, w.rule, w.value) for w in result.warnings] == [
        ("classification.urgency", "unmapped_defaulted", "7")
    ]


def test_an_unmapped_code_can_be_kept_for_review(make_spec: SpecFactory) -> None:
    crosswalk = CROSSWALK.replace("table: urgency", "table: question_category").replace('"1"}', '"0602"}').replace(
        '"2"}', '"0101"}'
    )
    spec = make_spec("problem.question_category_code: {path: wt, transforms: [{lookup: demo_urgency}]}",
                     crosswalks={"question.yaml": crosswalk % "keep_and_flag"})
    result = mapped(spec, payload(wt="计量/短斤缺两"))
    assert result.ticket.problem.question_category_code is None
    assert [(w.field, w.rule, w.value) for w in result.warnings] == [
        ("problem.question_category_code", "unmapped_kept", "计量/短斤缺两")
    ]


def test_an_inline_map_turns_values_into_codes(make_spec: SpecFactory) -> None:
    spec = make_spec("complainant.gender: {path: xb, transforms: [{map: {男: '1', 女: '2'}, default: '0'}]}")
    assert mapped(spec, payload(xb="女")).ticket.complainant.gender is not None
    assert mapped(spec, payload(xb="女")).ticket.complainant.gender.value == "2"  # type: ignore[union-attr]
    assert mapped(spec, payload(xb="未知")).ticket.complainant.gender.value == "0"  # type: ignore[union-attr]


def test_a_default_fills_an_absent_value(make_spec: SpecFactory) -> None:
    spec = make_spec("classification.urgency: {path: level, default: '2'}")
    assert mapped(spec, payload()).ticket.classification.urgency.value == "2"
    assert mapped(spec, payload(level="")).ticket.classification.urgency.value == "2"
    assert mapped(spec, payload(level="1")).ticket.classification.urgency.value == "1"


def test_a_required_value_that_is_absent_is_an_error(make_spec: SpecFactory) -> None:
    spec = make_spec("registration.request: {path: tsyq, required: true}")
    [error] = rejected(spec, payload()).errors
    assert (error.field, error.rule, error.source_path) == ("registration.request", "required", "tsyq")


def test_when_applies_a_rule_only_if_its_condition_holds(make_spec: SpecFactory) -> None:
    spec = make_spec("complainant.anonymous: {const: true, when: {path: name, present: false}}")
    assert mapped(spec, payload()).ticket.complainant.anonymous is True
    assert mapped(spec, payload(name="杨秀英")).ticket.complainant.anonymous is False


def test_alternatives_take_the_first_that_gives_a_value(make_spec: SpecFactory) -> None:
    spec = make_spec("""\
        complainant.name:
          - reporter.name
          - reporter.unit
    """)
    both = payload(reporter={"name": "张卫东", "unit": "凯里市应急管理局"})
    assert mapped(spec, both).ticket.complainant.name == "张卫东"
    assert mapped(spec, payload(reporter={"unit": "凯里市应急管理局"})).ticket.complainant.name == "凯里市应急管理局"


def test_concat_joins_the_parts_that_are_present(make_spec: SpecFactory) -> None:
    spec = make_spec("""\
        registration.title:
          concat: [a, b, c]
          sep: /
    """)
    assert mapped(spec, payload(a="食品", c="复合调味料")).ticket.registration.title == "食品/复合调味料"


def test_a_template_is_absent_when_a_placeholder_is(make_spec: SpecFactory) -> None:
    spec = make_spec("""\
        registration.request:
          concat:
            - {template: "死亡{dead}人"}
            - {template: "受伤{hurt}人"}
          sep: ，
          prefix: 伤亡情况：
    """)
    assert mapped(spec, payload(dead=0, hurt=7)).ticket.registration.request == "伤亡情况：死亡0人，受伤7人"
    assert mapped(spec, payload(hurt=7)).ticket.registration.request == "伤亡情况：受伤7人"
    assert mapped(spec, payload()).ticket.registration.request is None


def test_a_number_where_the_contract_keeps_text_becomes_text(make_spec: SpecFactory) -> None:
    spec = make_spec("source.related_ticket_nos: hotlineId")
    assert mapped(spec, payload(hotlineId=880231)).ticket.source.related_ticket_nos == ["880231"]


def test_a_wildcard_path_reads_every_item_of_a_list(make_spec: SpecFactory) -> None:
    spec = make_spec("respondent.credit_flags: 'LISTS[*].LISTTYPE'")
    data = payload(LISTS=[{"LISTTYPE": "严重违法失信名单"}, {"LISTTYPE": "经营异常名录"}, {"INDATE": "2024-01-15"}])
    assert mapped(spec, data).ticket.respondent.credit_flags == ["严重违法失信名单", "经营异常名录"]


ATTACHMENTS = """\
    attachments:
      each: attachments.file
      fields:
        uri: url
        sha256: {path: sha256, transforms: [lower]}
        mime: mimetype
"""
FILE = {
    "url": "https://12345.example.cn/a.jpg",
    "sha256": "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08",
    "mimetype": "image/jpeg",
}


def test_one_xml_element_and_a_repeated_one_map_alike(make_spec: SpecFactory) -> None:
    spec = make_spec(ATTACHMENTS)
    single = mapped(spec, payload(attachments={"file": FILE})).ticket.attachments
    repeated = mapped(spec, payload(attachments={"file": [FILE, FILE]})).ticket.attachments
    assert len(single) == 1 and len(repeated) == 2
    assert single[0] == repeated[1]


def test_an_error_in_a_list_item_names_the_item(make_spec: SpecFactory) -> None:
    spec = make_spec(ATTACHMENTS)
    bad = {**FILE, "sha256": "not-a-hash"}
    [error] = rejected(spec, payload(attachments={"file": [FILE, bad]})).errors
    assert (error.field, error.rule, error.source_path) == (
        "attachments[1].sha256", "string_pattern_mismatch", "attachments.file[1].sha256"
    )


def test_a_calendar_date_is_read_from_a_date_or_a_time(make_spec: SpecFactory) -> None:
    spec = make_spec("subject.dispute_date: {path: d, transforms: [date]}")
    assert mapped(spec, payload(d="2024/02/03")).ticket.subject.dispute_date == date(2024, 2, 3)
    assert mapped(spec, payload(d="2024-02-03T23:30:00+08:00")).ticket.subject.dispute_date == date(2024, 2, 3)
