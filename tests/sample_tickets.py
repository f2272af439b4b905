"""Realistic canonical tickets for tests: a complaint, a report and an enquiry from 黔东南州."""

from __future__ import annotations

import copy
from typing import Any

from contracts.ticket import Ticket

_COMPLAINT: dict[str, Any] = {
    "source": {
        "source_system": "city-12345",
        "adapter_id": "city-12345-rest",
        "source_ticket_no": "KL20240611000123",
        "source_received_at": "2024-06-11T09:30:00+08:00",
    },
    "classification": {"business_type": "02", "channel": "09", "origin_hotline": "12345", "urgency": "4"},
    "registration": {
        "registered_at": "2024-06-11T09:35:00+08:00",
        "title": "购买的电饭煲使用三天后无法加热",
        "content": "消费者于2024年6月8日在凯里市某电器商行购买电饭煲一台，使用三天后无法加热，要求退货遭拒。",
        "request": "退货并退还货款299元",
    },
    "complainant": {"name": "杨某某", "phone": "13800138000", "address": "贵州省黔东南州凯里市北京东路1号"},
    "respondent": {
        "name": "凯里市某电器商行",
        "uscc": "91350100M000100Y43",
        "operating_region_code": "522601",
        "operating_address": "凯里市北京东路8号",
    },
    "subject": {"goods_name": "电饭煲", "amount": "299.00"},
}


def ticket_data(kind: str = "complaint", no: str = "KL20240611000123", **changes: Any) -> dict[str, Any]:
    """The data of a valid ticket of `kind` (complaint, report, enquiry) with dotted-path changes."""
    data = copy.deepcopy(_COMPLAINT)
    data["source"]["source_ticket_no"] = no
    if kind == "report":
        data["classification"]["business_type"] = "03"
        data["occurrence"] = {"incident_region_code": "522625", "incident_address": "镇远县舞阳镇古城"}
    elif kind == "enquiry":
        data["classification"]["business_type"] = "01"
        data["complainant"] = {}
        del data["registration"]["request"]
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = data
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return data


def make_ticket(kind: str = "complaint", no: str = "KL20240611000123", **changes: Any) -> Ticket:
    """A valid Ticket; `changes` use double underscores for nesting, e.g. classification__urgency="1"."""
    return Ticket.model_validate(ticket_data(kind, no, **changes))
