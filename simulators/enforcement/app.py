"""The enforcement simulator: a case inbox (诉转案), clue and outcome records pushed with an HMAC signature."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from contracts.base import CHINA_STANDARD_TIME
from simulators.peer import (
    DEFAULT_GATEWAY_URL,
    CallbackRecorder,
    Delivered,
    Faults,
    Inbox,
    Pusher,
    PushResult,
    credential,
    get_path,
    load_fixtures,
    mount_callbacks,
    mount_faults,
    mount_inbox,
    mount_push,
    serve_in_thread,
    with_fresh_number,
)

ADAPTER_ID = "enforcement-case"
DEFAULT_PORT = 8413
NUMBER_PATH = ("record_no",)
CASE_PREFIX = "QDNZF-AJ-SIM-"
DECISIONS = ("立案", "不立案")
# The system's own 业务领域 by the national question category a case came with (longest prefix wins).
DOMAINS = {"0602": "食品安全", "0603": "特种设备安全", "0604": "药品安全", "0101": "产品质量", "02": "价格监管",
           "03": "计量", "04": "广告监管", "11": "知识产权"}
DEFAULT_DOMAIN = "产品质量"


def domain_of(question_category: object) -> str:
    code = str(question_category or "")
    for prefix in sorted(DOMAINS, key=len, reverse=True):
        if code.startswith(prefix):
            return DOMAINS[prefix]
    return DEFAULT_DOMAIN


def _local_time() -> str:
    return datetime.now(CHINA_STANDARD_TIME).strftime("%Y-%m-%d %H:%M:%S")


def _compact(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None and v != {}}


class EnforcementCaseSystem:
    """Cases received from the gateway, and the records (clues, case outcomes) this system pushes to it."""

    def __init__(self, *, gateway_url: str = DEFAULT_GATEWAY_URL, adapter_id: str = ADAPTER_ID,
                 hmac_secret: str | None = None, callback_secret: str | None = None,
                 inbox_api_key: str | None = None, timeout: float = 10.0) -> None:
        self.adapter_id = adapter_id
        self.records: dict[str, dict[str, Any]] = load_fixtures(ADAPTER_ID)
        self.pusher = Pusher(gateway_url, adapter_id, timeout=timeout,
                             hmac_secret=hmac_secret or credential("PARTNER_ENFORCEMENT_HMAC_SECRET"))
        self.callbacks = CallbackRecorder(callback_secret or credential("PARTNER_ENFORCEMENT_CALLBACK_SECRET"))
        self.cases = Inbox(CASE_PREFIX, api_key=inbox_api_key)
        self.faults = Faults()  # /sim/faults: the partner's endpoints fail or slow down
        self.url: str | None = None

    def push(self, record: dict[str, Any]) -> PushResult:
        return self.pusher.push(record)

    def push_fixture(self, name: str, *, fresh: bool = False) -> PushResult:
        record = self.records[name]
        return self.push(with_fresh_number(record, NUMBER_PATH) if fresh else record)

    def outcome_record(self, case: Delivered, *, decision: str, penalty: str | None = None,
                       confiscation: str | None = None, opinion: str | None = None,
                       decision_doc_no: str | None = None, domain: str | None = None) -> dict[str, Any]:
        """The record this system sends when a case is decided, in its own shape (see the fixtures).

        A case arrives as the gateway's routed delivery {"rule", "ticket", "event"} (or a bare ticket)."""
        if decision not in DECISIONS:
            raise ValueError(f"decision is one of {', '.join(DECISIONS)}")
        body = case.body if isinstance(case.body, dict) else {}
        ticket = body["ticket"] if isinstance(body.get("ticket"), dict) else body
        source_no = (get_path(ticket, ("national_registration_no",))
                     or get_path(ticket, ("source", "source_ticket_no")))
        party = _compact({
            "name": get_path(ticket, ("respondent", "name")),
            "credit_code": get_path(ticket, ("respondent", "uscc")),
            "reg_address": get_path(ticket, ("respondent", "operating_address")),
            "region_code": get_path(ticket, ("respondent", "operating_region_code")),
        })
        return _compact({
            "record_no": case.number,
            "record_type": "case",
            "domain": domain or domain_of(get_path(ticket, ("problem", "question_category_code"))),
            "received_at": case.received_at,
            "source_clue_no": source_no,
            "handling_org": _compact({"code": get_path(ticket, ("routing", "handler_org_code")),
                                      "name": get_path(ticket, ("routing", "handler_org_name"))}),
            "party": party,
            "informant": {"anonymous": True},  # a reporter's identity stays with the gateway (Art. 33)
            "facts": get_path(ticket, ("registration", "content")),
            "suspected_violation": get_path(ticket, ("problem", "suspected_violation")),
            "outcome": _compact({"decision": decision, "decided_at": _local_time(), "decision_doc_no": decision_doc_no,
                                 "penalty": penalty, "confiscation": confiscation, "opinion": opinion}),
        })

    def report_outcome(self, case_number: str, **outcome: Any) -> PushResult:
        """Push the outcome of a received case (立案 with penalties, or 不立案) to the gateway."""
        case = self.cases.find(case_number)
        if case is None:
            raise KeyError(f"no case {case_number}")
        return self.push(self.outcome_record(case, **outcome))


def create_app(sim: EnforcementCaseSystem) -> FastAPI:
    app = FastAPI(title="Enforcement case system simulator", version="1.0",
                  summary="Receives filed reports as cases (POST /api/cases); pushes clues and outcomes, signed.")
    mount_callbacks(app, sim.callbacks, faults=sim.faults)
    mount_faults(app, sim.faults)
    mount_push(app, sim.pusher, sim.records, NUMBER_PATH)
    mount_inbox(app, sim.cases, "/api/cases", faults=sim.faults, number_field="case_no")

    @app.post("/sim/cases/{case_no}/outcome", tags=["simulator"])
    async def report_outcome(case_no: str, request: Request) -> JSONResponse:
        """Decide a case and push the outcome: {"decision": "立案", "penalty": "50000.00元", "opinion": "…"}."""
        try:
            order = json.loads(await request.body() or b"{}")
            allowed = {"decision", "penalty", "confiscation", "opinion", "decision_doc_no", "domain"}
            if not isinstance(order, dict) or set(order) - allowed:
                raise ValueError(f"send an object with {', '.join(sorted(allowed))}")
            result = sim.report_outcome(case_no, **order)
        except KeyError as err:
            return JSONResponse({"error": "not_found", "message": str(err)}, status_code=404)
        except (ValueError, TypeError) as err:
            return JSONResponse({"error": "bad_request", "message": str(err)}, status_code=400)
        return JSONResponse({"status": result.status, "body": result.body})

    return app


@contextmanager
def run_in_thread(*, host: str = "127.0.0.1", port: int = 0, **options: Any) -> Iterator[EnforcementCaseSystem]:
    """The simulator served on loopback in a thread (port 0: a free one); `options` go to EnforcementCaseSystem."""
    sim = EnforcementCaseSystem(**options)
    with serve_in_thread(create_app(sim), name="enforcement", host=host, port=port) as url:
        sim.url = url
        try:
            yield sim
        finally:
            sim.url = None
