"""The national 12315 platform simulator, driven over real HTTP on loopback as the gateway would drive it."""

from __future__ import annotations

import copy
import itertools
import re
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
import uvicorn
from fastapi import FastAPI, Request, Response

from simulators.national import DEV_TOKEN, SimulatorConfig, run_national_simulator
from tests.sample_tickets import ticket_data

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
OLD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
NUMBER = re.compile(r"^12315(\d{6})(\d{8})(\d{6})$")
_ticket_numbers = itertools.count(1)
# One client for the module (building one per call costs tens of ms); no keep-alive, as servers come and go.
HTTP = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))

ENQUIRY: dict[str, Any] = {
    "source": {
        "source_system": "province-12345",
        "adapter_id": "province-12345-soap",
        "source_ticket_no": "GZ12345-ZX-0001",
        "source_received_at": "2024-06-11T09:30:00+08:00",
    },
    "classification": {"business_type": "01", "channel": "09", "origin_hotline": "12345"},
    "registration": {
        "registered_at": "2024-06-11T09:32:00+08:00",
        "content": "咨询网购商品七日无理由退货的运费由谁承担。",
    },
}
COMPLAINT: dict[str, Any] = ticket_data(respondent={"name": "凯里市某电器商行", "operating_region_code": "522601"})
REPORT: dict[str, Any] = {
    "source": {
        "source_system": "legacy-12331",
        "adapter_id": "legacy-12331",
        "source_ticket_no": "SY-2024-0611-07",
        "source_received_at": "2024-06-11T10:00:00+08:00",
    },
    "classification": {"business_type": "03", "channel": "01", "origin_hotline": "12331"},
    "registration": {"registered_at": "2024-06-11T10:05:00+08:00", "content": "举报某超市销售过期食品。"},
    "respondent": {"name": "凯里市某超市", "operating_region_code": "522601"},
    "subject": {"goods_name": "袋装牛奶", "amount": "86.50"},
}


def fresh(template: dict[str, Any]) -> dict[str, Any]:
    """A copy of a ticket with its own source ticket number, hence its own idempotency key."""
    ticket = copy.deepcopy(template)
    ticket["source"]["source_ticket_no"] += f"-{next(_ticket_numbers)}"
    return ticket


def submit(url: str, ticket: dict[str, Any], **kwargs: Any) -> httpx.Response:
    headers = kwargs.pop("headers", AUTH)
    return HTTP.post(f"{url}/api/v1/tickets", json=ticket, headers=headers, **kwargs)


def set_faults(url: str, **plan: Any) -> dict[str, Any]:
    response = HTTP.post(f"{url}/sim/faults", json=plan)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def stats(url: str) -> dict[str, Any]:
    result: dict[str, Any] = HTTP.get(f"{url}/sim/stats").json()
    return result


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture(scope="module")
def shared_national() -> Iterator[str]:
    with run_national_simulator() as url:
        yield url


@pytest.fixture
def national(shared_national: str) -> str:
    """The module's simulator, emptied and without faults, as if freshly started."""
    HTTP.post(f"{shared_national}/sim/reset").raise_for_status()
    HTTP.delete(f"{shared_national}/sim/faults").raise_for_status()
    return shared_national


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serve(app: FastAPI, port: int = 0) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for(lambda: server.started, timeout=5)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(5)


@dataclass
class Delivery:
    headers: dict[str, str]
    event: dict[str, Any]
    answered: int


@dataclass
class GatewayReceiver:
    """A stand-in for the gateway's status intake that checks every signature with the reference package."""

    secret: str
    answers: deque[int] = field(default_factory=deque)  # status codes to answer with first; then 204
    deliveries: list[Delivery] = field(default_factory=list)
    refused: int = 0

    def app(self) -> FastAPI:
        app = FastAPI()
        webhook = standardwebhooks.Webhook(self.secret)

        @app.post("/api/v1/national/status")
        async def status(request: Request) -> Response:
            body = await request.body()
            headers = dict(request.headers)
            try:
                event = webhook.verify(body, headers)
            except standardwebhooks.webhooks.WebhookVerificationError:
                self.refused += 1
                return Response(status_code=401)
            answer = self.answers.popleft() if self.answers else 204
            self.deliveries.append(Delivery(headers, event, answer))
            return Response(status_code=answer)

        return app

    def accepted(self) -> list[dict[str, Any]]:
        return [d.event for d in self.deliveries if 200 <= d.answered < 300]


@contextmanager
def national_with_receiver(receiver: GatewayReceiver, **config: Any) -> Iterator[str]:
    with serve(receiver.app()) as gateway:
        options: dict[str, Any] = {"secrets": [receiver.secret], "event_retry_initial_seconds": 0.05} | config
        with run_national_simulator(gateway_status_url=f"{gateway}/api/v1/national/status", **options) as url:
            yield url


# --- ticket intake ---------------------------------------------------------------------------------


def test_a_valid_ticket_is_registered_with_a_national_number(national: str) -> None:
    response = submit(national, fresh(COMPLAINT))
    assert response.status_code == 201
    body = response.json()
    match = NUMBER.match(body["national_registration_no"])
    assert match is not None
    assert match.group(1) == "522601"  # the respondent's region
    assert body["status"] == "RECEIVED" and body["duplicate"] is False
    assert response.headers["location"] == f"/api/v1/tickets/{body['national_registration_no']}"


def test_numbers_count_up_per_region_and_day(national: str) -> None:
    first = submit(national, fresh(COMPLAINT)).json()["national_registration_no"]
    second = submit(national, fresh(COMPLAINT)).json()["national_registration_no"]
    assert int(second[-6:]) == int(first[-6:]) + 1 and first[:-6] == second[:-6]


def test_a_ticket_naming_no_region_is_numbered_in_the_simulators_region(national: str) -> None:
    number = submit(national, fresh(ENQUIRY)).json()["national_registration_no"]
    assert number.startswith("12315522600")


def test_a_repeated_idempotency_key_returns_the_same_number_with_200(national: str) -> None:
    ticket = fresh(COMPLAINT)
    first = submit(national, ticket)
    again = submit(national, ticket)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["national_registration_no"] == first.json()["national_registration_no"]
    assert again.json()["duplicate"] is True and again.json()["submissions"] == 2


def test_the_idempotency_key_header_takes_precedence_over_the_tickets_own_key(national: str) -> None:
    headers = AUTH | {"Idempotency-Key": "gw-delivery-01J0ABC"}
    first = submit(national, fresh(COMPLAINT), headers=headers)
    other_ticket_same_key = submit(national, fresh(COMPLAINT), headers=headers)
    assert other_ticket_same_key.status_code == 200
    assert other_ticket_same_key.json()["national_registration_no"] == first.json()["national_registration_no"]


def test_a_ticket_is_fetched_by_number_and_found_by_idempotency_key(national: str) -> None:
    receipt = submit(national, fresh(REPORT)).json()
    fetched = HTTP.get(f"{national}/api/v1/tickets/{receipt['national_registration_no']}", headers=AUTH).json()
    assert fetched["ticket"]["national_registration_no"] == receipt["national_registration_no"]
    assert fetched["ticket"]["complainant"]["confidential"] is True  # a reporter's identity, by law
    found = HTTP.get(f"{national}/api/v1/tickets", params={"idempotency_key": receipt["idempotency_key"]},
                      headers=AUTH).json()
    assert [t["national_registration_no"] for t in found["tickets"]] == [receipt["national_registration_no"]]
    missing = HTTP.get(f"{national}/api/v1/tickets", params={"idempotency_key": "0" * 64}, headers=AUTH)
    assert missing.json() == {"tickets": []}


def test_an_unknown_number_is_404_with_the_field_named(national: str) -> None:
    response = HTTP.get(f"{national}/api/v1/tickets/12315522600202406110000099", headers=AUTH)
    assert response.status_code == 404
    assert response.json()["errors"][0]["field"] == "national_registration_no"


def test_an_invalid_ticket_is_rejected_with_422_naming_each_field(national: str) -> None:
    ticket = fresh(COMPLAINT)
    del ticket["complainant"]["phone"]
    ticket["respondent"]["operating_region_code"] = "999999"
    response = submit(national, ticket)
    assert response.status_code == 422
    errors = {e["field"]: e["rule"] for e in response.json()["errors"]}
    assert errors["respondent.operating_region_code"] == "invalid_region_code"
    assert all({"field", "rule", "message"} <= set(e) for e in response.json()["errors"])
    assert stats(national)["rejected"] == 1 and stats(national)["tickets"] == 0


def test_a_complaint_missing_what_the_law_requires_names_those_fields(national: str) -> None:
    ticket = fresh(COMPLAINT)
    del ticket["complainant"]["phone"], ticket["registration"]["request"]
    errors = {e["field"]: e["rule"] for e in submit(national, ticket).json()["errors"]}
    assert errors == {"complainant.phone": "complaint_requires", "registration.request": "complaint_requires"}


def test_a_body_that_is_not_json_is_rejected_with_422(national: str) -> None:
    response = HTTP.post(f"{national}/api/v1/tickets", content=b"<xml/>", headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["rule"] == "invalid_json"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {DEV_TOKEN}"}],
    ids=["none", "wrong-token", "wrong-scheme"],
)
def test_a_call_without_the_token_is_refused_with_401(national: str, headers: dict[str, str]) -> None:
    response = submit(national, fresh(ENQUIRY), headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert HTTP.get(f"{national}/api/v1/tickets", headers=headers).status_code == 401


def test_the_token_may_come_in_the_api_key_header(national: str) -> None:
    assert submit(national, fresh(ENQUIRY), headers={"X-API-Key": DEV_TOKEN}).status_code == 201


def test_auth_can_be_configured_off_or_to_another_token() -> None:
    with run_national_simulator(token=None) as url:
        assert submit(url, fresh(ENQUIRY), headers={}).status_code == 201
    with run_national_simulator(token="s3cret", api_key_header="X-Token") as url:
        assert submit(url, fresh(ENQUIRY), headers={"X-Token": "s3cret"}).status_code == 201
        assert submit(url, fresh(ENQUIRY)).status_code == 401


# --- fault injection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_an_error_fault_answers_with_the_configured_status(national: str, status: int) -> None:
    set_faults(national, error_ratio=1.0, error_status=status)
    response = submit(national, fresh(ENQUIRY))
    assert response.status_code == status
    assert response.headers["x-sim-fault"] == "error"
    assert stats(national)["faults"] == {"error": 1} and stats(national)["tickets"] == 0


def test_a_rate_limit_fault_answers_429_with_retry_after(national: str) -> None:
    set_faults(national, rate_limit_ratio=1.0, retry_after_seconds=7)
    response = submit(national, fresh(ENQUIRY))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"


def test_latency_delays_every_national_call(national: str) -> None:
    set_faults(national, latency_ms=300)
    started = time.monotonic()
    assert submit(national, fresh(ENQUIRY)).status_code == 201
    assert time.monotonic() - started >= 0.3
    assert stats(national)["faults"] == {"latency": 1}


def test_a_timeout_fault_outlasts_the_client_yet_the_ticket_was_registered(national: str) -> None:
    set_faults(national, timeout_ratio=1.0)
    ticket = fresh(COMPLAINT)
    with pytest.raises(httpx.ReadTimeout):  # the client gave up after its 0.3 s; the platform held the answer
        submit(national, ticket, timeout=0.3)
    HTTP.delete(f"{national}/sim/faults")
    retry = submit(national, ticket)
    assert retry.status_code == 200 and retry.json()["duplicate"] is True  # the retry is what dedupe absorbs


def test_a_timed_out_call_is_answered_late_to_a_patient_client(national: str) -> None:
    set_faults(national, timeout_ratio=1.0, timeout_seconds=0.3)
    assert submit(national, fresh(ENQUIRY), timeout=5).status_code == 201


def test_a_drop_fault_closes_the_connection_without_a_response(national: str) -> None:
    set_faults(national, drop_ratio=1.0)
    ticket = fresh(COMPLAINT)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        submit(national, ticket)
    HTTP.delete(f"{national}/sim/faults")
    assert submit(national, ticket).status_code == 200
    assert stats(national)["faults"] == {"drop": 1}


def test_lost_responses_can_be_configured_to_lose_the_request_too(national: str) -> None:
    set_faults(national, drop_ratio=1.0, lost_responses_processed=False)
    ticket = fresh(COMPLAINT)
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        submit(national, ticket)
    HTTP.delete(f"{national}/sim/faults")
    assert submit(national, ticket).status_code == 201


def test_an_outage_window_answers_503_with_retry_after_until_it_ends(national: str) -> None:
    plan = set_faults(national, outage_seconds=1.0)
    assert 0 < plan["outage_remaining_seconds"] <= 1.0
    during = submit(national, fresh(ENQUIRY))
    assert during.status_code == 503 and during.headers["retry-after"] == "1"
    assert HTTP.get(f"{national}/sim/stats").status_code == 200  # the control API is never faulted
    time.sleep(1.05)
    assert submit(national, fresh(ENQUIRY)).status_code == 201
    assert stats(national)["faults"] == {"outage": 1}


def test_an_outage_can_be_set_from_the_command_line_options() -> None:
    with run_national_simulator(faults={"outage_until": time.time() + 30}) as url:
        assert submit(url, fresh(ENQUIRY)).status_code == 503


def test_a_seed_makes_the_fault_sequence_repeatable() -> None:
    def outcomes() -> list[int]:
        with run_national_simulator(seed=12315, faults={"error_ratio": 0.3, "rate_limit_ratio": 0.2}) as url:
            return [submit(url, fresh(ENQUIRY)).status_code for _ in range(20)]

    first, second = outcomes(), outcomes()
    assert first == second
    assert {201, 429, 503} <= set(first)


def test_fault_ratios_together_cannot_exceed_one(national: str) -> None:
    response = HTTP.post(f"{national}/sim/faults", json={"error_ratio": 0.6, "drop_ratio": 0.6})
    assert response.status_code == 422
    assert "cannot exceed 1" in response.json()["errors"][0]["message"]
    assert HTTP.get(f"{national}/sim/faults").json()["error_ratio"] == 0.0


def test_stats_count_submissions_keys_duplicates_and_faults(national: str) -> None:
    first, second = fresh(COMPLAINT), fresh(REPORT)
    for ticket in (first, first, second, first):
        submit(national, ticket)
    set_faults(national, rate_limit_ratio=1.0)
    submit(national, first)
    counted = stats(national)
    assert counted["submissions"] == 4
    assert counted["unique_idempotency_keys"] == 2
    assert counted["duplicates"] == 2
    assert counted["faults"] == {"rate_limit": 1}


# --- status events -----------------------------------------------------------------------------------


def test_auto_advance_walks_each_business_type_and_posts_signed_events() -> None:
    receiver = GatewayReceiver(SECRET)
    with national_with_receiver(receiver, auto_advance_seconds=0.05) as url:
        numbers = {
            kind: submit(url, fresh(template)).json()["national_registration_no"]
            for kind, template in (("enquiry", ENQUIRY), ("complaint", COMPLAINT), ("report", REPORT))
        }
        wait_for(lambda: len(receiver.accepted()) == 1 + 4 + 3)

    def path(number: str) -> list[tuple[int, str]]:
        return [(e["sequence"], e["status"]) for e in receiver.accepted() if e["national_registration_no"] == number]

    assert path(numbers["enquiry"]) == [(1, "CLOSED")]
    assert path(numbers["complaint"]) == [(1, "ACCEPTED"), (2, "MEDIATING"), (3, "MEDIATED"), (4, "CLOSED")]
    assert path(numbers["report"]) == [(1, "ACCEPTED"), (2, "FILED"), (3, "CLOSED")]
    closed_report = next(e for e in receiver.accepted()
                         if e["national_registration_no"] == numbers["report"] and e["status"] == "CLOSED")
    assert closed_report["result"]["penalty_amount"] == "5000.00"
    assert closed_report["org"] == "凯里市市场监督管理局"
    assert receiver.refused == 0
    assert all(d.headers["webhook-id"] == f"msg_{d.event['event_id']}" for d in receiver.deliveries)


def test_an_event_is_retried_with_backoff_while_the_gateway_fails() -> None:
    receiver = GatewayReceiver(SECRET, answers=deque([503, 500, 429]))
    with national_with_receiver(receiver) as url:
        number = submit(url, fresh(COMPLAINT)).json()["national_registration_no"]
        HTTP.post(f"{url}/sim/tickets/{number}/events", json={"status": "ACCEPTED"})

        def events() -> list[dict[str, Any]]:
            found: list[dict[str, Any]] = HTTP.get(f"{url}/sim/events",
                                                   params={"national_registration_no": number}).json()["events"]
            return found

        # The receiver sees the accepted request before the platform records its answer: wait for the record.
        wait_for(lambda: len(receiver.accepted()) == 1 and events()[0]["state"] != "pending")
        events_now = events()
    assert [a["status_code"] for a in events_now[0]["attempts"]] == [503, 500, 429, 204]
    assert events_now[0]["state"] == "delivered"
    assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1  # stable across retries


def test_an_event_reaches_a_gateway_that_comes_up_late() -> None:
    receiver, port = GatewayReceiver(SECRET), free_port()
    status_url = f"http://127.0.0.1:{port}/api/v1/national/status"

    def attempts(url: str) -> list[dict[str, Any]]:
        events = HTTP.get(f"{url}/sim/events").json()["events"]
        return events[0]["attempts"] if events else []

    with run_national_simulator(gateway_status_url=status_url, secrets=[SECRET], event_retry_initial_seconds=0.05,
                                event_retry_max_seconds=0.2, event_max_attempts=0) as url:
        number = submit(url, fresh(ENQUIRY)).json()["national_registration_no"]
        HTTP.post(f"{url}/sim/tickets/{number}/events", json={"status": "CLOSED"})
        wait_for(lambda: len(attempts(url)) >= 2)
        assert all(a["error"].startswith("ConnectError") for a in attempts(url))
        with serve(receiver.app(), port=port):
            wait_for(lambda: len(receiver.accepted()) == 1)
        assert HTTP.get(f"{url}/sim/events").json()["events"][0]["state"] == "delivered"


def test_an_event_fails_after_its_attempts_when_the_gateway_stays_down() -> None:
    with run_national_simulator(gateway_status_url=f"http://127.0.0.1:{free_port()}/status", secrets=[SECRET],
                                event_retry_initial_seconds=0.05, event_max_attempts=3) as url:
        number = submit(url, fresh(ENQUIRY)).json()["national_registration_no"]
        HTTP.post(f"{url}/sim/tickets/{number}/events", json={"status": "CLOSED"})
        wait_for(lambda: HTTP.get(f"{url}/sim/events").json()["events"][0]["state"] == "failed")
        record = HTTP.get(f"{url}/sim/events").json()["events"][0]
        assert len(record["attempts"]) == 3 and all(a["error"] for a in record["attempts"])
        assert stats(url)["events_failed"] == 1


def test_a_permanent_refusal_by_the_gateway_is_not_retried() -> None:
    receiver = GatewayReceiver(SECRET, answers=deque([409]))
    with national_with_receiver(receiver) as url:
        number = submit(url, fresh(ENQUIRY)).json()["national_registration_no"]
        HTTP.post(f"{url}/sim/tickets/{number}/events", json={"status": "CLOSED"})
        wait_for(lambda: HTTP.get(f"{url}/sim/events").json()["events"][0]["state"] == "failed")
    assert len(receiver.deliveries) == 1


def test_an_on_demand_refusal_carries_its_reason_and_opinion() -> None:
    receiver = GatewayReceiver(SECRET)
    with national_with_receiver(receiver) as url:
        number = submit(url, fresh(COMPLAINT)).json()["national_registration_no"]
        response = HTTP.post(f"{url}/sim/tickets/{number}/events",
                              json={"status": "NOT_ACCEPTED", "not_accepted_reason": "5", "opinion": "超过三年"})
        assert response.status_code == 201 and response.json()["transition_allowed"] is True
        wait_for(lambda: len(receiver.accepted()) == 1)
        fetched = HTTP.get(f"{url}/api/v1/tickets/{number}", headers=AUTH).json()
    event = receiver.accepted()[0]
    assert (event["status"], event["not_accepted_reason"], event["opinion"]) == ("NOT_ACCEPTED", "5", "超过三年")
    assert fetched["status"] == "NOT_ACCEPTED" and len(fetched["events"]) == 1


def test_an_on_demand_event_that_breaks_the_contract_is_422(national: str) -> None:
    number = submit(national, fresh(COMPLAINT)).json()["national_registration_no"]
    response = HTTP.post(f"{national}/sim/tickets/{number}/events", json={"status": "NOT_ACCEPTED"})
    assert response.status_code == 422
    assert "not_accepted_reason" in response.json()["errors"][0]["message"]
    unknown = HTTP.post(f"{national}/sim/tickets/{number}/events", json={"status": "DONE"})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "status"
    assert HTTP.post(f"{national}/sim/tickets/nope/events", json={"status": "CLOSED"}).status_code == 404


def test_an_illegal_transition_is_still_sent_and_flagged_for_gateway_tests(national: str) -> None:
    number = submit(national, fresh(COMPLAINT)).json()["national_registration_no"]
    response = HTTP.post(f"{national}/sim/tickets/{number}/events", json={"status": "MEDIATED"})
    assert response.status_code == 201 and response.json()["transition_allowed"] is False


def test_a_resent_event_is_a_deliberate_duplicate_with_the_same_id_and_body() -> None:
    receiver = GatewayReceiver(SECRET)
    with national_with_receiver(receiver) as url:
        number = submit(url, fresh(COMPLAINT)).json()["national_registration_no"]
        event_id = HTTP.post(f"{url}/sim/tickets/{number}/events", json={"status": "ACCEPTED"}).json()["event"][
            "event_id"]
        wait_for(lambda: len(receiver.accepted()) == 1)
        assert HTTP.post(f"{url}/sim/events/{event_id}/resend").status_code == 202
        wait_for(lambda: len(receiver.accepted()) == 2)
    first, second = receiver.deliveries
    assert first.event == second.event
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


def test_a_held_event_sent_late_arrives_out_of_order() -> None:
    receiver = GatewayReceiver(SECRET)
    with national_with_receiver(receiver) as url:
        number = submit(url, fresh(COMPLAINT)).json()["national_registration_no"]
        held = HTTP.post(f"{url}/sim/tickets/{number}/events", json={"status": "ACCEPTED", "deliver": False})
        assert held.json()["state"] == "held"
        HTTP.post(f"{url}/sim/tickets/{number}/events", json={"status": "MEDIATING"})
        wait_for(lambda: len(receiver.accepted()) == 1)
        HTTP.post(f"{url}/sim/events/{held.json()['event']['event_id']}/resend")
        wait_for(lambda: len(receiver.accepted()) == 2)
    assert [(e["sequence"], e["status"]) for e in receiver.accepted()] == [(2, "MEDIATING"), (1, "ACCEPTED")]


def test_a_forced_old_sequence_makes_a_stale_event(national: str) -> None:
    number = submit(national, fresh(COMPLAINT)).json()["national_registration_no"]
    HTTP.post(f"{national}/sim/tickets/{number}/events", json={"status": "ACCEPTED"})
    stale = HTTP.post(f"{national}/sim/tickets/{number}/events", json={"status": "RETURNED", "sequence": 1})
    assert stale.json()["event"]["sequence"] == 1
    assert HTTP.get(f"{national}/api/v1/tickets/{number}", headers=AUTH).json()["status"] == "ACCEPTED"


def test_during_rotation_a_gateway_still_holding_the_old_secret_verifies_events() -> None:
    receiver = GatewayReceiver(OLD_SECRET)
    with national_with_receiver(receiver, secrets=[SECRET, OLD_SECRET]) as url:
        number = submit(url, fresh(ENQUIRY)).json()["national_registration_no"]
        HTTP.post(f"{url}/sim/tickets/{number}/events", json={"status": "CLOSED"})
        wait_for(lambda: len(receiver.accepted()) == 1)
    assert len(receiver.deliveries[0].headers["webhook-signature"].split(" ")) == 2


def test_a_gateway_holding_another_secret_refuses_the_events() -> None:
    receiver = GatewayReceiver(SECRET)
    with national_with_receiver(receiver, secrets=[OLD_SECRET], event_max_attempts=1) as url:
        number = submit(url, fresh(ENQUIRY)).json()["national_registration_no"]
        HTTP.post(f"{url}/sim/tickets/{number}/events", json={"status": "CLOSED"})
        wait_for(lambda: receiver.refused == 1)


def test_reset_forgets_tickets_and_counters(national: str) -> None:
    submit(national, fresh(ENQUIRY))
    assert HTTP.post(f"{national}/sim/reset").status_code == 200
    assert stats(national)["tickets"] == 0 and stats(national)["submissions"] == 0


# --- persistence and the command line ----------------------------------------------------------------


def test_a_state_file_keeps_numbers_and_keys_across_restarts(tmp_path: Path) -> None:
    config = SimulatorConfig(state_file=tmp_path / "national.json")
    ticket = fresh(COMPLAINT)
    with run_national_simulator(config) as url:
        first = submit(url, ticket).json()["national_registration_no"]
    with run_national_simulator(config) as url:
        again = submit(url, ticket)
        nxt = submit(url, fresh(COMPLAINT)).json()["national_registration_no"]
    assert again.status_code == 200 and again.json()["national_registration_no"] == first
    assert int(nxt[-6:]) == int(first[-6:]) + 1


def test_the_command_line_serves_the_simulator_with_its_flags() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "simulators.national", "--port", str(port), "--seed", "1",
         "--fault-rate-limit-ratio", "1", "--fault-retry-after", "9", "--log-level", "WARNING"],
        cwd=Path(__file__).resolve().parents[2], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            assert process.poll() is None, "the simulator exited"
            try:
                return HTTP.get(f"{url}/healthz").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=15)
        response = submit(url, fresh(ENQUIRY))
        assert response.status_code == 429 and response.headers["retry-after"] == "9"
    finally:
        process.terminate()
        process.wait(10)


def test_the_command_line_refuses_a_bad_secret_with_exit_code_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "simulators.national", "--secret", "not-a-whsec"],
        cwd=Path(__file__).resolve().parents[2], capture_output=True, text=True, timeout=30, check=False,
    )
    assert result.returncode == 2 and "whsec_" in result.stderr
