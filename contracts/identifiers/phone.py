"""Phone numbers as partners write them (0855-8274966, +86 138 0013 8000, full-width digits) to E.164."""

from __future__ import annotations

import unicodedata

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from contracts.identifiers.errors import IdentifierError
from contracts.identifiers.memo import Remembered

_KIND = "phone"

_LENGTH_REASONS = {
    ValidationResult.TOO_SHORT: "has too few digits to be a callable number",
    ValidationResult.TOO_LONG: "has too many digits",
    ValidationResult.INVALID_LENGTH: "has a number of digits that no callable number has",
}

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: "starts with an unknown country code",
    NumberParseException.NOT_A_NUMBER: "has no digits to dial",
    NumberParseException.TOO_SHORT_AFTER_IDD: "has too few digits after the international prefix",
    NumberParseException.TOO_SHORT_NSN: "has too few digits to be a callable number",
    NumberParseException.TOO_LONG: "has too many digits",
}


def normalize_phone(value: str, default_region: str = "CN") -> str:
    """The number in E.164 form (+8613800138000), or an IdentifierError saying why it cannot be called."""
    if default_region == "CN":
        return _normalize_cn(value)
    return _normalize(value, default_region)


def _normalize(value: str, default_region: str) -> str:
    # NFKC turns full-width digits, brackets and plus signs, common in Chinese input, into ASCII.
    text = unicodedata.normalize("NFKC", value).strip()
    if not text:
        raise IdentifierError(_KIND, value, "a phone number is empty")
    try:
        number = phonenumbers.parse(text, default_region)
    except NumberParseException as error:
        reason = _PARSE_REASONS.get(error.error_type, "cannot be read as a phone number")
        raise IdentifierError(_KIND, value, f"the phone number {reason}") from None
    if not phonenumbers.is_valid_number(number):
        if phonenumbers.is_valid_short_number(number):
            raise IdentifierError(
                _KIND,
                value,
                "the phone number is a service short code (such as 12345, 12315 or 110), "
                "not a number the complainant can be called back on",
            )
        length_reason = _LENGTH_REASONS.get(phonenumbers.is_possible_number_with_reason(number))
        if length_reason is not None:
            raise IdentifierError(_KIND, value, f"the phone number {length_reason}")
        region = phonenumbers.region_code_for_country_code(number.country_code or 0)
        hint = (
            "; a landline needs its area code (0855-8274966) and a mobile number has 11 digits"
            if region == "CN"
            else ""
        )
        raise IdentifierError(
            _KIND, value, f"the phone number is not assigned in the {region} numbering plan{hint}"
        )
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


_normalize_cn = Remembered(lambda value: _normalize(value, "CN"))
