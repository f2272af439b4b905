"""Validation and normalisation of the identifiers a ticket carries: USCC, ID, phone and region codes."""

from contracts.identifiers.errors import IdentifierError
from contracts.identifiers.phone import normalize_phone
from contracts.identifiers.regions import (
    Region,
    RegionLevel,
    is_known_province,
    lookup_region,
    region_by_name,
    region_chain,
    regions_within,
)
from contracts.identifiers.resident_id import (
    birth_date_of,
    gender_of,
    normalize_resident_id,
    resident_id_check_char,
)
from contracts.identifiers.uscc import (
    EnterpriseCode,
    classify_enterprise_code,
    org_code_check_char,
    org_code_of_uscc,
    registration_no_check_digit,
    uscc_check_char,
    validate_org_code,
    validate_registration_no,
    validate_uscc,
)

__all__ = [
    "EnterpriseCode",
    "IdentifierError",
    "Region",
    "RegionLevel",
    "birth_date_of",
    "classify_enterprise_code",
    "gender_of",
    "is_known_province",
    "lookup_region",
    "normalize_phone",
    "normalize_resident_id",
    "org_code_check_char",
    "org_code_of_uscc",
    "region_by_name",
    "region_chain",
    "regions_within",
    "registration_no_check_digit",
    "resident_id_check_char",
    "uscc_check_char",
    "validate_org_code",
    "validate_registration_no",
    "validate_uscc",
]
