"""The bare baseline: a FastAPI endpoint that validates the partner's body with a pydantic model and answers 202.

Nothing else: no authentication, mapping, storage or queue. Served by uvicorn exactly as the gateway is
(one process, `log_config=None`, no access log), so the ratio to it is the price of everything the
gateway does beyond parsing and validating a request.

    python -m bench.common.baseline --port 8399
"""

from __future__ import annotations

import argparse
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from bench.common.payloads import BASE_CITY_PATH, BASE_PROVINCE_PATH

Text = Annotated[str, Field(max_length=4000)]
Short = Annotated[str, Field(max_length=200)]


class _Partner(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)


class CityRespondent(_Partner):
    name: Short | None = None
    creditCode: Annotated[str, Field(max_length=18)] | None = None
    address: Short | None = None


class CityGoods(_Partner):
    name: Short | None = None
    brand: Short | None = None
    spec: Short | None = None
    quantity: Decimal | None = None
    amount: Decimal | None = None
    buyDate: date | None = None


class CityAttachment(_Partner):
    fileUrl: str
    fileName: Short | None = None
    mimeType: Short | None = None
    fileSize: int | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9A-Fa-f]{64}$")] | None = None


class CityTicket(_Partner):
    """The city 12345 platform's push (camelCase JSON), as a hand-written pydantic model."""

    hotlineId: int | None = None
    hotlineNo: Annotated[str, Field(min_length=1, max_length=64)]
    platformNo: Short | None = None
    appealTypeCode: Literal["01", "02", "03", "04", "05", "06"]
    appealTypeName: Short | None = None
    appealTitle: Short | None = None
    appealContent: Text
    appealRequest: Text | None = None
    hotlineSource: Short | None = None
    urgentLevel: Literal["1", "2", "3", "4"] | None = None
    areaCode: Annotated[str, Field(pattern=r"^\d{6}$")]
    areaName: Short | None = None
    eventAddress: Short | None = None
    contactName: Short | None = None
    contactPhone: Annotated[str, Field(pattern=r"^\+?[\d\- ]{5,20}$")] | None = None
    contactSex: Literal["0", "1", "2"] | None = None
    contactAddress: Short | None = None
    contactIdCard: Annotated[str, Field(pattern=r"^\d{15}$|^\d{17}[\dXx]$")] | None = None
    respondent: CityRespondent | None = None
    goods: CityGoods | None = None
    acceptDeptCode: Short | None = None
    acceptDeptName: Short | None = None
    createTime: datetime
    limitTime: datetime | None = None
    handleStatus: Short | None = None
    attachments: list[CityAttachment] = Field(default_factory=list)


class ProvinceOrder(_Partner):
    """The provincial 12345 work order (the SubmitTicket `order`), as a hand-written pydantic model."""

    infoid: Annotated[str, Field(min_length=1, max_length=64)]
    visittime: Short
    way: Short | None = None
    aim: Short | None = None
    questiontype: Short | None = None
    title: Short | None = None
    content: Text
    request: Text | None = None
    limittime: Short | None = None
    limitdays: Short | None = None
    isend: Literal["0", "1"] | None = None
    visitorname: Short | None = None
    sex: Short | None = None
    idcard: Annotated[str, Field(pattern=r"^\d{15}$|^\d{17}[\dXx]$")] | None = None
    mobilephone: Annotated[str, Field(pattern=r"^\+?[\d\- ]{5,20}$")] | None = None
    visitoraddress: Short | None = None
    questionarea: Short | None = None
    eventaddress: Short | None = None
    objectname: Short | None = None
    objectcode: Annotated[str, Field(max_length=18)] | None = None
    objectaddress: Short | None = None
    urgentlevel: Short | None = None
    addorg: Short | None = None
    ispub: Short | None = None


def create_app() -> FastAPI:
    app = FastAPI(title="bare baseline")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(BASE_CITY_PATH, status_code=202, response_model=None)
    async def city(ticket: CityTicket) -> JSONResponse:
        return JSONResponse({"ticket_id": str(uuid.uuid4()), "repeat": False}, status_code=202)

    @app.post(BASE_PROVINCE_PATH, status_code=202, response_model=None)
    async def province(order: ProvinceOrder) -> JSONResponse:
        return JSONResponse({"ticket_id": str(uuid.uuid4()), "repeat": False}, status_code=202)

    return app


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8399)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
