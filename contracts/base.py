"""Shared building blocks of the national contract: the strict base model and value types."""

from __future__ import annotations

from datetime import timedelta, timezone
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

CHINA_STANDARD_TIME = timezone(timedelta(hours=8), "CST")

# Money in CNY: never negative, at most two decimal places (分).
Money = Annotated[Decimal, Field(ge=0, max_digits=16, decimal_places=2)]


class ContractModel(BaseModel):
    """Base of every contract model: unknown fields are an error, text is trimmed."""

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        validate_assignment=True,
        use_enum_values=False,
        allow_inf_nan=False,  # 1e999 in JSON reads as inf: a value no ticket holds and no JSON answer can carry
    )
