"""The city 12345 mapping written as plain Python: what the declarative `city-12345-rest` spec does, with no
engine. The mapping benchmark times the engine against it; the intake floor uses it as the cheapest mapping
an intake could have. Both check first that it produces the same tickets as the spec.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from bench.common import payloads
from contracts.identifiers import classify_enterprise_code, normalize_phone, normalize_resident_id, region_by_name
from contracts.ticket import Ticket
from mapping import Mapped, apply, spec_for

ADAPTER = "city-12345-rest"
CST = timezone(timedelta(hours=8))
_SPACES = re.compile(r"\s+")
_LINE_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_APPEAL_TYPES = {"01": "01", "02": "02", "03": "03"}
_URGENCY = {"1": "1", "2": "2", "3": "3", "4": "4"}
_GENDER = {"0": "0", "1": "1", "2": "2"}


def _fold(text: str | None) -> str | None:
    return _SPACES.sub(" ", text).strip() or None if text else None


def _fold_lines(text: str) -> str:
    lines = (_LINE_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_LINES.sub("\n", "\n".join(lines)).strip()


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # the zone follows
    return moment.replace(tzinfo=CST) if moment.tzinfo is None else moment.astimezone(CST)


def _day(text: str | None) -> date | None:
    if not text:
        return None
    for form in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(text, form).date()  # a calendar day
        except ValueError:
            continue
    raise ValueError(f"not a date: {text!r}")


def _money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    text = str(value).replace(",", "").removesuffix("元").removeprefix("￥").strip()
    return Decimal(text)


def _code(value: Any, kind: str) -> str | None:
    code = classify_enterprise_code(value) if value else None
    return code.value if code is not None and code.kind == kind else None


def _prune(group: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in group.items() if value is not None}


def hand_written(payload: dict[str, Any]) -> Ticket | None:
    """The city 12345 mapping written as plain Python; None for 建议/求助/表扬 (returned to 12345)."""
    appeal_type = str(payload.get("appealTypeCode") or "")
    if appeal_type in ("04", "05", "06"):
        return None
    received = _time(payload.get("createTime"))
    respondent = payload.get("respondent") or {}
    goods = payload.get("goods") or {}
    content = payload.get("appealContent") or ""
    content = _fold_lines(content)[:4000]
    title = _fold(payload.get("appealTitle"))
    id_card = (payload.get("contactIdCard") or "").strip()
    phone = payload.get("contactPhone")
    platform_no = (payload.get("platformNo") or "").strip()
    area = payload.get("areaCode")
    area_text = str(area).strip() if area not in (None, "") else None
    quantity = goods.get("quantity")
    doc = {
        "source": _prune({
            "source_system": "city-12345",
            "adapter_id": ADAPTER,
            "source_ticket_no": payload["hotlineNo"].strip(),
            "related_ticket_nos": [platform_no] if platform_no else None,
            "source_received_at": received,
            "source_deadline": _time(payload.get("limitTime")),
        }),
        "classification": _prune({
            "business_type": _APPEAL_TYPES[appeal_type],
            "channel": "09",
            "origin_hotline": "12345",
            "urgency": _URGENCY.get(str(payload.get("urgentLevel") or ""), "4") if payload.get("urgentLevel") else None,
        }),
        "registration": _prune({
            "registered_at": received,
            "title": title[:200] if title else None,
            "content": content,
            "request": _fold(payload.get("appealRequest")),
        }),
        "complainant": _prune({
            "name": (payload.get("contactName") or "").strip() or None,
            "phone": normalize_phone(phone) if phone else None,
            "address": _fold(payload.get("contactAddress")),
            "gender": _GENDER.get(str(payload["contactSex"]), "0") if payload.get("contactSex") else None,
            "id_type": "01" if id_card else None,
            "id_number": normalize_resident_id(id_card) if id_card else None,
        }),
        "respondent": _prune({
            "name": _fold(respondent.get("name")),
            "uscc": _code(respondent.get("creditCode"), "uscc"),
            "legacy_registration_no": _code(respondent.get("creditCode"), "registration_no"),
            "operating_address": _fold(respondent.get("address")),
            "operating_region_code": str(area) if respondent.get("name") and area else None,
        }),
        "subject": _prune({
            "goods_name": _fold(goods.get("name")),
            "brand": _fold(goods.get("brand")),
            "model_spec": _fold(goods.get("spec")),
            "quantity": Decimal(str(quantity)) if quantity not in (None, "") else None,
            "amount": _money(goods.get("amount")),
            "dispute_date": _day(goods.get("buyDate")),
        }),
        "occurrence": _prune({
            "incident_region_code": area_text,
            "incident_address": _fold(payload.get("eventAddress")),
        }),
        "routing": _prune({
            "handler_org_code": payload.get("acceptDeptCode") or None,
            "handler_org_name": payload.get("acceptDeptName") or None,
        }),
        "attachments": [
            _prune({
                "uri": item.get("fileUrl"),
                "sha256": item["sha256"].strip().lower() if item.get("sha256") else None,
                "mime": item.get("mimeType"),
                "name": item.get("fileName"),
                "size": int(item["fileSize"]) if item.get("fileSize") is not None else None,
            })
            for item in payload.get("attachments") or []
        ],
    }
    return Ticket.model_validate(doc)


PROVINCE_ADAPTER = "province-12345-soap"
_CROSSWALKS = Path(__file__).resolve().parents[2] / "mapping" / "specs" / "crosswalks" / "province-12345"


def _crosswalk(name: str) -> dict[str, str]:
    document = yaml.safe_load((_CROSSWALKS / name).read_text(encoding="utf-8"))
    return {str(entry["partner_code"]): str(entry["code"]) for entry in document["entries"]}


_AIMS = _crosswalk("aim.yaml")
_PROVINCE_URGENCY = _crosswalk("urgency.yaml")
_QUESTION_TYPES = _crosswalk("question-type.yaml")
_PROVINCE_GENDER = {"男": "1", "女": "2"}
_GUIZHOU = "520000"


def _province_time(text: str | None) -> datetime | None:
    if not text:
        return None
    for form in ("%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text.strip(), form).replace(tzinfo=CST)
        except ValueError:
            continue
    return _time(text)


def province_hand_written(order: dict[str, Any]) -> Ticket | None:
    """The provincial 12345 mapping written as plain Python for the orders the benchmarks send (no attachments);
    None for an order the spec returns to 12345 (建议/求助/表扬, or not a market-supervision matter)."""
    aim = (order.get("aim") or "").strip()
    question = (order.get("questiontype") or "").strip()
    if aim in ("建议", "求助", "表扬") or question.split("_")[0] != "市场监管":
        return None
    received = _province_time(order.get("visittime"))
    title = _fold(order.get("title"))
    id_card = (order.get("idcard") or "").strip()
    phone = order.get("mobilephone")
    name = (order.get("visitorname") or "").strip() or None
    area = (order.get("questionarea") or "").strip()
    region = region_by_name(area, _GUIZHOU).code if area else None
    code = order.get("objectcode")
    urgency = (order.get("urgentlevel") or "").strip()
    doc = {
        "source": _prune({
            "source_system": "province-12345",
            "adapter_id": PROVINCE_ADAPTER,
            "source_ticket_no": order["infoid"].strip(),
            "source_received_at": received,
            "source_deadline": _province_time(order.get("limittime")),
        }),
        "classification": _prune({
            "business_type": _AIMS[aim],
            "channel": "09",
            "origin_hotline": "12345",
            "urgency": _PROVINCE_URGENCY.get(urgency, "4") if urgency else None,
        }),
        "registration": _prune({
            "registered_at": received,
            "title": title[:200] if title else None,
            "content": _fold_lines(order.get("content") or "")[:4000],
            "request": _fold(order.get("request")),
            "keywords": question.split("_") if question else None,
        }),
        "complainant": _prune({
            "name": name,
            "phone": normalize_phone(phone) if phone else None,
            "address": _fold(order.get("visitoraddress")),
            "gender": _PROVINCE_GENDER.get((order.get("sex") or "").strip(), "0"),
            "id_type": "01" if id_card else None,
            "id_number": normalize_resident_id(id_card) if id_card else None,
            "anonymous": True if name is None and not phone else None,
        }),
        "respondent": _prune({
            "name": _fold(order.get("objectname")),
            "uscc": _code(code, "uscc"),
            "legacy_registration_no": _code(code, "registration_no"),
            "legacy_org_code": _code(code, "org_code"),
            "operating_address": _fold(order.get("objectaddress")),
            "operating_region_code": region if order.get("objectname") else None,
        }),
        "problem": _prune({"question_category_code": _QUESTION_TYPES.get(question)}),
        "occurrence": _prune({
            "incident_region_code": region,
            "incident_address": _fold(order.get("eventaddress")),
        }),
    }
    return Ticket.model_validate(doc)


def check_against_specs(tag: str, n: int = 200) -> None:
    """Refuse to measure with the hand-written mappings unless they make the specs' tickets for the benchmarks'
    payloads (tickets 0 to n-1 of run `tag`)."""
    pairs = ((payloads.CITY_ADAPTER, lambda i: json.loads(payloads.city_body(tag, i)), hand_written),
             (payloads.PROVINCE_ADAPTER, lambda i: payloads.province_order(tag, i), province_hand_written))
    for adapter, payload_of, hand in pairs:
        spec = spec_for(adapter)
        for i in range(n):
            payload = payload_of(i)
            mapped, written = apply(spec, payload), hand(payload)
            if not isinstance(mapped, Mapped) or written is None or (
                    mapped.ticket.model_dump(mode="json", exclude={"ticket_id"})
                    != written.model_dump(mode="json", exclude={"ticket_id"})):
                raise SystemExit(f"{adapter}: the hand-written mapping differs from the spec for ticket {i}")
