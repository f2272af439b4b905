"""Specification of the identifier rules: USCC and legacy enterprise codes, ID numbers, phones, regions."""

from __future__ import annotations

from datetime import date

import pytest

from contracts.identifiers import (
    EnterpriseCode,
    IdentifierError,
    Region,
    birth_date_of,
    classify_enterprise_code,
    gender_of,
    is_known_province,
    lookup_region,
    normalize_phone,
    normalize_resident_id,
    org_code_of_uscc,
    region_by_name,
    region_chain,
    regions_within,
    validate_uscc,
)
from contracts.identifiers import phone as phone_module
from contracts.identifiers.memo import MAX_REMEMBERED
from contracts.identifiers.uscc import USCC_ALPHABET
from tests.contracts.published_usccs import PUBLISHED_USCCS, PublishedUscc

# Registered codes whose MOD 31 check and embedded GB 11714 organisation-code check both hold.
REGISTERED_USCCS = [
    "91350100M000100Y43",
    "914403001922038216",  # 华为技术有限公司
    "91440300708461136T",  # 深圳市腾讯计算机系统有限公司
    "91110000100017643K",
    "91110108551385082Q",
    "11100000000013127D",  # registration authority 1 (机构编制), category 1 (机关)
]

# Built by the GB 32100 rules (no published code with a letter registration authority could be found to cite):
# they show the letter authorities and their categories are known, not that the check character is right.
LETTER_AUTHORITY_USCCS = [
    "N2522601MA6XT8RK34",  # 农业 / 村级集体经济组织 in 凯里市
    "Y1522601MA6J9W4B7C",  # 其他
    "A1110000MB1957E06B",  # 中央军委改革和编制办公室 / 军队事业单位
]

TODAY = date(2026, 11, 28)


def reason_of(error: pytest.ExceptionInfo[IdentifierError]) -> str:
    return error.value.reason


# --- 统一社会信用代码 -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", REGISTERED_USCCS)
def test_registered_uscc_is_valid(code: str) -> None:
    assert validate_uscc(code) == code


@pytest.mark.parametrize("published", PUBLISHED_USCCS, ids=[p.code for p in PUBLISHED_USCCS])
def test_every_published_uscc_is_valid(published: PublishedUscc) -> None:
    assert validate_uscc(published.code) == published.code


@pytest.mark.parametrize("published", PUBLISHED_USCCS, ids=[p.code for p in PUBLISHED_USCCS])
def test_a_published_uscc_with_any_other_check_character_is_refused(published: PublishedUscc) -> None:
    refused = []
    for other in USCC_ALPHABET.replace(published.code[17], ""):
        with pytest.raises(IdentifierError, match="check character"):
            validate_uscc(published.code[:17] + other)
        refused.append(other)
    assert len(refused) == 30


@pytest.mark.parametrize("code", LETTER_AUTHORITY_USCCS)
def test_uscc_whose_registration_authority_is_a_letter_is_valid(code: str) -> None:
    assert validate_uscc(code) == code


def test_uscc_is_normalised_to_upper_case_without_spaces() -> None:
    assert validate_uscc("  9144 0300 7084 6113 6t ") == "91440300708461136T"


def test_uscc_with_wrong_check_character_names_the_expected_one() -> None:
    with pytest.raises(IdentifierError) as error:
        validate_uscc("914403001922038217")
    assert error.value.kind == "uscc"
    assert error.value.value == "914403001922038217"
    assert reason_of(error) == "check character is '7' but should be '6'"
    assert str(error.value) == reason_of(error)


@pytest.mark.parametrize("code", ["91440300708461136", "91440300708461136TT", ""])
def test_uscc_of_wrong_length_is_rejected(code: str) -> None:
    with pytest.raises(IdentifierError, match="18 characters"):
        validate_uscc(code)


@pytest.mark.parametrize("letter", ["I", "O", "Z", "S", "V"])
def test_uscc_with_a_letter_outside_the_alphabet_is_rejected(letter: str) -> None:
    with pytest.raises(IdentifierError, match=f"character '{letter}' at position 9 is not allowed"):
        validate_uscc(f"91440300{letter}08461136T")


def test_uscc_with_unknown_registration_authority_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="registration authority 'B' in position 1 is unknown"):
        validate_uscc("B1440300708461136T")


def test_uscc_with_category_the_authority_does_not_have_is_rejected() -> None:
    # 工商 (9) registers enterprises (1), sole traders (2) and co-operatives (3) only.
    with pytest.raises(IdentifierError, match=r"category '5' in position 2 does not exist .* 9 \(工商\)"):
        validate_uscc("95440300708461136T")


def test_org_code_is_positions_9_to_17_of_the_uscc() -> None:
    assert org_code_of_uscc("91350100M000100Y43") == "M000100Y4"


@pytest.mark.parametrize("absent", [None, "", "  ", "无", "暂无", "/", "-"])
def test_enterprise_code_that_says_there_is_none_is_absent(absent: str | None) -> None:
    assert classify_enterprise_code(absent) is None


def test_enterprise_code_of_18_characters_is_a_uscc() -> None:
    assert classify_enterprise_code("914403001922038216") == EnterpriseCode("uscc", "914403001922038216")


def test_enterprise_code_of_15_digits_is_a_legacy_registration_number() -> None:
    assert classify_enterprise_code("440301103097413") == EnterpriseCode("registration_no", "440301103097413")


def test_legacy_registration_number_with_wrong_check_digit_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="check digit is '4' but should be '3'") as error:
        classify_enterprise_code("440301103097414")
    assert error.value.kind == "registration_no"


@pytest.mark.parametrize("written", ["70846113-6", "708461136", "７０８４６１１３－６"])
def test_enterprise_code_of_9_characters_is_an_organisation_code(written: str) -> None:
    assert classify_enterprise_code(written) == EnterpriseCode("org_code", "708461136")


def test_organisation_code_with_wrong_check_character_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="check character is '5' but should be '6'") as error:
        classify_enterprise_code("70846113-5")
    assert error.value.kind == "org_code"


@pytest.mark.parametrize("value", ["12345", "无营业执照", "9144030070846113"])
def test_enterprise_code_of_no_known_shape_is_rejected(value: str) -> None:
    with pytest.raises(IdentifierError, match="neither a unified social credit code"):
        classify_enterprise_code(value)


# --- 居民身份证号码 --------------------------------------------------------------------------------


def test_resident_id_from_the_standard_with_x_check_is_valid() -> None:
    assert normalize_resident_id("11010519491231002X", today=TODAY) == "11010519491231002X"


@pytest.mark.parametrize(
    "written", ["11010519491231002x", "１１０１０５１９４９１２３１００２Ｘ", " 110105 19491231 002X "]
)
def test_resident_id_is_normalised_to_ascii_upper_case_without_spaces(written: str) -> None:
    assert normalize_resident_id(written, today=TODAY) == "11010519491231002X"


def test_resident_id_with_digit_check_is_valid() -> None:
    assert normalize_resident_id("522601199001011232", today=TODAY) == "522601199001011232"


def test_resident_id_with_wrong_check_character_names_the_expected_one() -> None:
    with pytest.raises(IdentifierError) as error:
        normalize_resident_id("522601199001011234", today=TODAY)
    assert error.value.kind == "resident_id"
    assert reason_of(error) == "check character is '4' but should be '2'"


def test_resident_id_with_impossible_birth_date_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="birth date 1990-02-30 does not exist"):
        normalize_resident_id("522601199002301231", today=TODAY)


def test_resident_id_born_in_the_future_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="birth date 2099-01-01 is in the future"):
        normalize_resident_id("522601209901011234", today=TODAY)


def test_resident_id_born_before_1900_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="before 1900"):
        normalize_resident_id("522601189912311237", today=TODAY)


def test_resident_id_with_unknown_province_prefix_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="region prefix 99 is not a province-level code"):
        normalize_resident_id("990000199001011239", today=TODAY)


def test_resident_id_from_a_county_code_no_longer_current_is_accepted() -> None:
    # 130503 (邢台市桥西区) was abolished in 2020; numbers issued there remain valid for life.
    assert normalize_resident_id("130503196704010016", today=TODAY) == "130503196704010016"


def test_residence_permit_number_for_taiwan_residents_is_accepted() -> None:
    assert normalize_resident_id("830000199001011234", today=TODAY) == "830000199001011234"


def test_legacy_15_digit_resident_id_is_upgraded_to_18() -> None:
    assert normalize_resident_id("130503670401001", today=TODAY) == "130503196704010016"


@pytest.mark.parametrize("value", ["5226011990010112", "52260119900101123X1", "52260119900101123A"])
def test_resident_id_of_wrong_shape_is_rejected(value: str) -> None:
    with pytest.raises(IdentifierError) as error:
        normalize_resident_id(value, today=TODAY)
    assert error.value.kind == "resident_id"


def test_birth_date_is_read_from_the_resident_id() -> None:
    assert birth_date_of("11010519491231002X") == date(1949, 12, 31)


@pytest.mark.parametrize(("number", "gender"), [("11010519491231002X", "F"), ("522601199001011232", "M")])
def test_gender_is_the_parity_of_the_sequence_number(number: str, gender: str) -> None:
    assert gender_of(number) == gender


# --- Phone numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("0855-8274966", "+868558274966"),
        ("0855 8274966", "+868558274966"),
        ("(0855)8274966", "+868558274966"),
        ("（0855）8274966", "+868558274966"),
        ("010-12345678", "+861012345678"),
        ("13800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("86-138-0013-8000", "+8613800138000"),
        ("0086 13800138000", "+8613800138000"),
        ("１３８００１３８０００", "+8613800138000"),
    ],
)
def test_phone_number_as_written_is_normalised_to_e164(written: str, e164: str) -> None:
    assert normalize_phone(written) == e164


@pytest.mark.parametrize("short_code", ["12345", "12315", "110", "95588"])
def test_service_short_code_is_not_a_callable_number(short_code: str) -> None:
    with pytest.raises(IdentifierError, match="service short code") as error:
        normalize_phone(short_code)
    assert error.value.kind == "phone"


@pytest.mark.parametrize("value", ["8274966", "1380013800", "138001380001", "99999", "not a number", ""])
def test_phone_number_that_cannot_be_called_is_rejected(value: str) -> None:
    with pytest.raises(IdentifierError) as error:
        normalize_phone(value)
    assert error.value.kind == "phone"
    assert error.value.reason


def test_landline_without_area_code_is_rejected_with_a_hint() -> None:
    with pytest.raises(IdentifierError, match="needs its area code"):
        normalize_phone("8274966")


# --- GB/T 2260 region codes ----------------------------------------------------------------------


def test_region_chain_runs_from_province_to_county() -> None:
    assert [(region.code, region.name, region.level) for region in region_chain("522601")] == [
        ("520000", "贵州省", "province"),
        ("522600", "黔东南苗族侗族自治州", "city"),
        ("522601", "凯里市", "county"),
    ]


def test_district_of_a_municipality_hangs_directly_under_it() -> None:
    assert [region.name for region in region_chain("110101")] == ["北京市", "东城区"]


def test_county_level_city_administered_by_its_province_hangs_directly_under_it() -> None:
    assert [region.name for region in region_chain("429004")] == ["湖北省", "仙桃市"]


@pytest.mark.parametrize(("code", "name"), [("441900", "东莞市"), ("442000", "中山市"), ("460400", "儋州市")])
def test_city_without_counties_is_a_city(code: str, name: str) -> None:
    assert lookup_region(code) == Region(code, name, code[:2] + "0000", "city")


def test_region_looked_up_by_code_knows_its_parent() -> None:
    assert lookup_region("522600") == Region("522600", "黔东南苗族侗族自治州", "520000", "city")


@pytest.mark.parametrize("code", ["522699", "999999"])
def test_unknown_region_code_is_rejected(code: str) -> None:
    with pytest.raises(IdentifierError, match="not in the current GB/T 2260 table") as error:
        lookup_region(code)
    assert error.value.kind == "region_code"


@pytest.mark.parametrize("code", ["5226", "52260a", "5226010"])
def test_region_code_that_is_not_six_digits_is_rejected(code: str) -> None:
    with pytest.raises(IdentifierError, match="6 digits"):
        lookup_region(code)


def test_region_by_exact_name() -> None:
    assert region_by_name("凯里市").code == "522601"


def test_region_by_name_without_its_suffix_when_unique() -> None:
    assert region_by_name("黔东南").code == "522600"


def test_region_name_used_in_two_provinces_is_ambiguous() -> None:
    with pytest.raises(IdentifierError, match=r"ambiguous.*110105.*220104"):
        region_by_name("朝阳区")


@pytest.mark.parametrize(
    ("within", "code"), [("110000", "110105"), ("吉林省", "220104"), ("长春市", "220104")]
)
def test_region_name_is_made_unique_by_the_region_it_lies_within(within: str, code: str) -> None:
    assert region_by_name("朝阳区", within=within).code == code


def test_unknown_region_name_is_rejected() -> None:
    with pytest.raises(IdentifierError, match="no region is named"):
        region_by_name("桃花源县")


@pytest.mark.parametrize(
    ("prefix", "known"), [("52", True), ("11", True), ("71", True), ("81", True), ("99", False)]
)
def test_known_province_prefixes(prefix: str, known: bool) -> None:
    assert is_known_province(prefix) is known


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("653228", "和康县"),
        ("653229", "和安县"),
        ("460302", "西沙区"),
        ("659012", "白杨市"),
        ("710000", "台湾省"),
    ],
)
def test_region_table_includes_recently_created_and_special_divisions(code: str, name: str) -> None:
    assert lookup_region(code).name == name


def test_a_normalised_phone_reads_the_same_again_and_errors_are_never_remembered() -> None:
    first = normalize_phone("０８５５－８２７４９６６")
    assert first == "+868558274966"
    assert normalize_phone(first) == first
    assert normalize_phone(first, "US") == first  # E.164 carries its country, whatever the default region
    for _ in range(2):  # refused each time: only numbers that passed are remembered
        with pytest.raises(IdentifierError):
            normalize_phone("12345")


def test_the_phone_memory_stays_bounded() -> None:
    for i in range(9000):
        normalize_phone(f"1380013{i:04d}")
    assert 0 < len(phone_module._normalize_cn.known) <= MAX_REMEMBERED


def test_remembered_id_numbers_and_credit_codes_check_the_same_and_errors_are_never_remembered() -> None:
    legacy = "110105491231002"  # a 15-digit number becomes 18 characters
    upgraded = normalize_resident_id(legacy)
    assert len(upgraded) == 18 and normalize_resident_id(upgraded) == upgraded == normalize_resident_id(legacy)
    uscc = validate_uscc(" 91440300708461136t ")  # normalised: trimmed, upper case
    assert validate_uscc(uscc) == uscc
    for _ in range(2):
        with pytest.raises(IdentifierError):
            validate_uscc("91440300708461136X")  # a wrong check character, refused each time
        with pytest.raises(IdentifierError):
            normalize_resident_id("110105491231002X")


def test_regions_within_a_prefecture_are_it_and_its_counties_in_code_order() -> None:
    within = [(r.code, r.name) for r in regions_within("522700")]
    assert within[:3] == [("522700", "黔南布依族苗族自治州"), ("522701", "都匀市"), ("522702", "福泉市")]
    assert len(within) == 13 and within[-1] == ("522732", "三都水族自治县")


def test_regions_within_a_province_list_each_prefecture_before_its_counties() -> None:
    codes = [r.code for r in regions_within("520000")]
    assert len(codes) == 98 and codes[0] == "520000"
    assert codes.index("522700") < codes.index("522701") < codes.index("522702")

