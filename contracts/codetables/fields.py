"""Field types shared by code tables and crosswalks: quoted codes, calendar dates and validity periods."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Final

from pydantic import BeforeValidator, StrictBool, StrictFloat, StrictInt, StrictStr, StringConstraints, ValidationInfo

_ISO_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _quoted_text(value: object) -> object:
    # YAML reads 01 as the number 1 and 010101 as the octal 4161: a code must be written as text.
    if isinstance(value, bool | int | float):
        raise ValueError(
            f"must be quoted text (YAML read the unquoted value as the number {value!r}); "
            "write codes and versions in quotes, e.g. code: '01'"
        )
    return value


def _iso_date(value: object) -> object:
    # Pydantic alone would also take numbers (as Unix times) and datetimes; a table date is a calendar day.
    if isinstance(value, datetime):
        raise ValueError(f"must be a date written YYYY-MM-DD, not a date and time ({value.isoformat()})")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        if not _ISO_DATE.match(value):
            raise ValueError(f"{value!r} is not a date written YYYY-MM-DD")
        try:
            return date.fromisoformat(value)
        except ValueError as err:
            raise ValueError(f"{value!r} is not a valid date: {err}") from None
    raise ValueError(f"must be a date written YYYY-MM-DD, got {type(value).__name__} {value!r}")


Code = Annotated[str, BeforeValidator(_quoted_text), StringConstraints(pattern=r"^[0-9A-Za-z_]+$")]
TableId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
Text = Annotated[str, BeforeValidator(_quoted_text), StringConstraints(strip_whitespace=True, min_length=1)]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]
AttrKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]
AttrValue = StrictStr | StrictInt | StrictFloat | StrictBool | None


def check_end(value: date | None, info: ValidationInfo) -> date | None:
    """An `effective_to` validator: the end of a half-open period must come after its start."""
    start = info.data.get("effective_from")
    if value is not None and isinstance(start, date) and value <= start:
        raise ValueError(
            f"effective_to {value} must be later than effective_from {start} "
            "(effective_to is the first day on which it no longer applies)"
        )
    return value
