"""Citizen identity numbers (居民身份证号码, GB 11643): check, upgrade legacy 15-digit ones, read them."""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Literal

from contracts.identifiers.errors import IdentifierError
from contracts.identifiers.memo import Remembered
from contracts.identifiers.regions import is_known_province

_KIND = "resident_id"
_WEIGHTS = tuple(2 ** (17 - position) % 11 for position in range(17))
_CHECK_CHARS = "10X98765432"
_EARLIEST_BIRTH = date(1900, 1, 1)
# Residence permits for people from Hong Kong, Macao and Taiwan follow GB 11643 with prefixes 81, 82
# and 83; 83 is not a GB/T 2260 code, so it is allowed here by name rather than through the table.
_RESIDENCE_PERMIT_PREFIXES = frozenset({"81", "82", "83"})


def resident_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first 17 digits (X stands for 10)."""
    return _CHECK_CHARS[
        sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True)) % 11
    ]


def normalize_resident_id(value: str, *, today: date | None = None) -> str:
    """The 18-character upper-case identity number, upgrading a legacy 15-digit one.

    Only the province (first two digits) is checked against the region table: the six-digit prefix
    is the county where the number was first issued, which has often been merged or renamed since,
    and the number stays valid for life.
    """
    if today is None:  # a number valid today stays valid: its birth date only gets further away
        return _normalize_today(value)
    return _normalize(value, today)


def _normalize(value: str, today: date | None) -> str:
    # NFKC folds the full-width digits and Ｘ that Chinese input methods produce.
    number = "".join(unicodedata.normalize("NFKC", value).split()).upper()
    if len(number) == 15:
        if not number.isascii() or not number.isdigit():
            raise IdentifierError(_KIND, value, "a 15-digit identity number has digits only")
        # Legacy numbers were issued only to people born in the 1900s; they carry no check character.
        first17 = number[:6] + "19" + number[6:]
        number = first17 + resident_id_check_char(first17)
    elif len(number) == 18:
        first17 = number[:17]
        if not first17.isascii() or not first17.isdigit() or number[17] not in _CHECK_CHARS:
            raise IdentifierError(
                _KIND, value, "an 18-character identity number is 17 digits followed by a digit or X"
            )
        expected = resident_id_check_char(first17)
        if number[17] != expected:
            raise IdentifierError(
                _KIND, value, f"check character is {number[17]!r} but should be {expected!r}"
            )
    else:
        raise IdentifierError(_KIND, value, f"an identity number has 18 or 15 characters, got {len(number)}")

    prefix = number[:2]
    if not is_known_province(prefix) and prefix not in _RESIDENCE_PERMIT_PREFIXES:
        raise IdentifierError(_KIND, value, f"region prefix {prefix} is not a province-level code")
    birth = _birth_date(number, value)
    if birth < _EARLIEST_BIRTH:
        raise IdentifierError(_KIND, value, f"birth date {birth.isoformat()} is before 1900")
    if birth > (today or date.today()):
        raise IdentifierError(_KIND, value, f"birth date {birth.isoformat()} is in the future")
    return number


_normalize_today = Remembered(lambda value: _normalize(value, None))


def _birth_date(number: str, original: str) -> date:
    digits = number[6:14]
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise IdentifierError(
            _KIND, original, f"birth date {digits[:4]}-{digits[4:6]}-{digits[6:8]} does not exist"
        ) from None


def birth_date_of(id18: str) -> date:
    """The holder's date of birth (positions 7-14)."""
    number = normalize_resident_id(id18)
    return _birth_date(number, id18)


def gender_of(id18: str) -> Literal["M", "F"]:
    """The holder's sex: the sequence number in position 17 is odd for men and even for women."""
    number = normalize_resident_id(id18)
    return "M" if int(number[16]) % 2 else "F"
