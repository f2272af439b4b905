"""Enterprise identifiers: the unified social credit code (GB 32100-2015) and the legacy codes it replaced."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final, Literal

from contracts.identifiers.errors import IdentifierError
from contracts.identifiers.memo import Remembered

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {char: index for index, char in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

# GB 32100-2015 Appendix A with the later additions A (military) and N (rural collectives): the
# registration authority in position 1 and the institution categories it may put in position 2.
REGISTRATION_AUTHORITIES: dict[str, tuple[str, dict[str, str]]] = {
    "1": ("机构编制", {"1": "机关", "2": "事业单位", "3": "中央编办直接管理机构编制的群众团体", "9": "其他"}),
    "2": ("外交", {"1": "外国常驻新闻机构", "9": "其他"}),
    "3": (
        "司法行政",
        {
            "1": "律师执业机构",
            "2": "公证处",
            "3": "基层法律服务所",
            "4": "司法鉴定机构",
            "5": "仲裁委员会",
            "9": "其他",
        },
    ),
    "4": ("文化", {"1": "外国在华文化中心", "9": "其他"}),
    "5": ("民政", {"1": "社会团体", "2": "民办非企业单位", "3": "基金会", "9": "其他"}),
    "6": (
        "旅游",
        {"1": "外国旅游部门常驻代表机构", "2": "港澳台地区旅游部门常驻内地（大陆）代表机构", "9": "其他"},
    ),
    "7": ("宗教", {"1": "宗教活动场所", "2": "宗教院校", "9": "其他"}),
    "8": ("工会", {"1": "基层工会", "9": "其他"}),
    "9": ("工商", {"1": "企业", "2": "个体工商户", "3": "农民专业合作社"}),
    "A": ("中央军委改革和编制办公室", {"1": "军队事业单位", "9": "其他"}),
    "N": ("农业", {"1": "组级集体经济组织", "2": "村级集体经济组织", "3": "乡镇级集体经济组织", "9": "其他"}),
    "Y": ("其他", {"1": "其他"}),
}

ORG_CODE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)

# Written in the respondent field when there is no code at all; not an identifier to validate.
ABSENT_MARKERS = frozenset({"", "无", "暂无", "/", "-", "—", "无此项", "不详", "null", "none", "n/a"})

EnterpriseCodeKind = Literal["uscc", "registration_no", "org_code"]
_USCC: Final = "uscc"
_REGISTRATION_NO: Final = "registration_no"
_ORG_CODE: Final = "org_code"


@dataclass(frozen=True, slots=True)
class EnterpriseCode:
    kind: EnterpriseCodeKind
    value: str


def _compact(value: str) -> str:
    # Partners paste codes with inner spaces, full-width characters or lower case; none of it is meaningful.
    return "".join(unicodedata.normalize("NFKC", value).split()).upper()


def uscc_check_char(first17: str) -> str:
    """The MOD 31 check character of GB 32100-2015 for the first 17 characters of a code."""
    total = sum(_USCC_VALUE[char] * weight for char, weight in zip(first17, _USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def org_code_check_char(first8: str) -> str:
    """The check character of GB 11714 for the first 8 characters of an organisation code."""
    total = sum(
        ORG_CODE_ALPHABET.index(char) * weight for char, weight in zip(first8, _ORG_CODE_WEIGHTS, strict=True)
    )
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def registration_no_check_digit(first14: str) -> str:
    """The ISO 7064 MOD 11,10 check digit of a legacy 15-digit business registration number (工商注册号)."""
    product = 10
    for digit in first14:
        product = ((product % 11 + int(digit)) % 10 or 10) * 2
    return str((11 - product % 11) % 10)


def _validate_uscc(value: str) -> str:
    """The normalised unified social credit code, or an IdentifierError naming the rule it breaks."""
    code = _compact(value)
    if len(code) != 18:
        raise IdentifierError(
            _USCC, value, f"a unified social credit code has 18 characters, got {len(code)}"
        )
    for position, char in enumerate(code, start=1):
        if char not in _USCC_VALUE:
            raise IdentifierError(
                _USCC,
                value,
                f"character {char!r} at position {position} is not allowed "
                f"(only digits and letters other than I, O, Z, S, V)",
            )
    authority = REGISTRATION_AUTHORITIES.get(code[0])
    if authority is None:
        raise IdentifierError(
            _USCC,
            value,
            f"registration authority {code[0]!r} in position 1 is unknown "
            f"(known: {', '.join(REGISTRATION_AUTHORITIES)})",
        )
    authority_name, categories = authority
    if code[1] not in categories:
        raise IdentifierError(
            _USCC,
            value,
            f"institution category {code[1]!r} in position 2 does not exist for registration authority "
            f"{code[0]} ({authority_name}); it allows {', '.join(categories)}",
        )
    if not code[2:8].isdigit():
        raise IdentifierError(_USCC, value, "positions 3-8 must be the six digits of a region code")
    expected = uscc_check_char(code[:17])
    if code[17] != expected:
        raise IdentifierError(_USCC, value, f"check character is {code[17]!r} but should be {expected!r}")
    return code


validate_uscc = Remembered(_validate_uscc)


def org_code_of_uscc(uscc: str) -> str:
    """The 9-character organisation code (GB 11714) embedded in positions 9-17 of a valid USCC."""
    return validate_uscc(uscc)[8:17]


def validate_registration_no(value: str) -> str:
    """The legacy 15-digit business registration number, checked with ISO 7064 MOD 11,10."""
    number = _compact(value)
    if len(number) != 15 or not number.isascii() or not number.isdigit():
        raise IdentifierError(_REGISTRATION_NO, value, "a business registration number has 15 digits")
    expected = registration_no_check_digit(number[:14])
    if number[14] != expected:
        raise IdentifierError(
            _REGISTRATION_NO, value, f"check digit is {number[14]!r} but should be {expected!r}"
        )
    return number


def validate_org_code(value: str) -> str:
    """The 9-character organisation code (GB 11714) without its customary hyphen before the check."""
    code = _compact(value).replace("-", "")
    if len(code) != 9:
        raise IdentifierError(_ORG_CODE, value, f"an organisation code has 9 characters, got {len(code)}")
    for position, char in enumerate(code[:8], start=1):
        if char not in ORG_CODE_ALPHABET:
            raise IdentifierError(
                _ORG_CODE, value, f"character {char!r} at position {position} is not a digit or letter"
            )
    expected = org_code_check_char(code[:8])
    if code[8] != expected:
        raise IdentifierError(_ORG_CODE, value, f"check character is {code[8]!r} but should be {expected!r}")
    return code


def classify_enterprise_code(value: str | None) -> EnterpriseCode | None:
    """Which enterprise identifier a respondent's code field holds, or None when it says there is none.

    Legacy line systems put an old 15-digit registration number or a 9-character organisation code
    in the same field as the USCC; each is recognised by its length and validated by its own rule.
    """
    if value is None:
        return None
    compact = _compact(value)
    if compact.lower() in ABSENT_MARKERS:
        return None
    without_hyphens = compact.replace("-", "")
    if len(compact) == 18:
        return EnterpriseCode(_USCC, validate_uscc(compact))
    if len(compact) == 15 and compact.isdigit():
        return EnterpriseCode(_REGISTRATION_NO, validate_registration_no(compact))
    if len(without_hyphens) == 9:
        return EnterpriseCode(_ORG_CODE, validate_org_code(without_hyphens))
    raise IdentifierError(
        "enterprise_code",
        value,
        f"{len(compact)} characters is neither a unified social credit code (18), "
        f"a business registration number (15 digits) nor an organisation code (9)",
    )
