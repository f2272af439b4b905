"""The national simulator's follow-ups (update, urge, withdraw) over real HTTP: one registration, signed answers."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import standardwebhooks

from simulators.national import DEV_TOKEN, run_national_simulator
from tests.sample_tickets import ticket_data

AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}
SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
HTTP = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture(scope="module")
def national() -> Iterator[str]:
    with run_national_simulator(secrets=[SECRET]) as url:
        yield url


@pytest.fixture
def registered(national: str) -> dict[str, Any]:
    """A complaint registered under a fresh number: the platform's summary of it."""
    HTTP.post(f"{national}/sim/reset").raise_for_status()
    response = HTTP.post(f"{national}/api/v1/tickets", json=ticket_data(), headers=AUTH)
    assert response.status_code == 201, response.text
    summary: dict[str, Any] = response.json()
    return summary


def follow_up(national: str, body: dict[str, Any], headers: dict[str, str] = AUTH) -> httpx.Response:
    return HTTP.post(f"{national}/api/v1/tickets/follow-ups", json=body, headers=headers)


def signed_answer(response: httpx.Response) -> dict[str, Any]:
    """The answer, once its Standard Webhooks signature verifies with the reference package."""
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = standardwebhooks.Webhook(SECRET).verify(response.content, dict(response.headers))
    return answer


def update(summary: dict[str, Any], version: str, request: str) -> dict[str, Any]:
    ticket = copy.deepcopy(ticket_data())
    ticket["source"]["source_version"] = version
    ticket["registration"]["request"] = request
    ticket["ticket_id"] = summary["ticket_id"]
    ticket.pop("idempotency_key", None)
    return {"operation": "update", "registration_key": summary["idempotency_key"], "ticket_id": summary["ticket_id"],
            "key": key(f"v{version}"), "version": version, "ticket": ticket, "at": "2024-06-12T09:00:00+08:00"}


def test_an_update_replaces_the_registered_ticket_under_the_same_number(national: str,
                                                                        registered: dict[str, Any]) -> None:
    answer = signed_answer(follow_up(national, update(registered, "2", "退货退款")))

    number = registered["national_registration_no"]
    assert answer == {"operation": "update", "outcome": "updated", "national_registration_no": number,
                      "key": key("v2"), "version": "2"}
    stored = HTTP.get(f"{national}/api/v1/tickets/{number}", headers=AUTH).json()
    assert (stored["version"], stored["versions"]) == ("2", ["2"])
    assert stored["ticket"]["registration"]["request"] == "退货退款"
    assert stored["ticket"]["national_registration_no"] == number
    assert len(HTTP.get(f"{national}/api/v1/tickets", headers=AUTH).json()["tickets"]) == 1


def test_an_older_version_is_a_repeat_and_the_same_follow_up_again_gets_its_first_answer(
        national: str, registered: dict[str, Any]) -> None:
    first = signed_answer(follow_up(national, update(registered, "3", "三")))
    again = signed_answer(follow_up(national, update(registered, "3", "三")))
    older = signed_answer(follow_up(national, update(registered, "2", "二")))

    assert first == again and first["outcome"] == "updated"
    assert (older["outcome"], older["version"]) == ("repeat", "3")
    stats = HTTP.get(f"{national}/sim/stats").json()
    assert (stats["updates"], stats["follow_up_repeats"]) == (1, 1)


def test_urges_are_counted_once_each(national: str, registered: dict[str, Any]) -> None:
    def urge(name: str) -> dict[str, Any]:
        return signed_answer(follow_up(national, {
            "operation": "urge", "registration_key": registered["idempotency_key"],
            "ticket_id": registered["ticket_id"], "key": key(name), "at": "2024-06-13T09:00:00+08:00",
            "text": "催办：请尽快处理"}))

    assert [urge(n)["urge_count"] for n in ("first", "first", "second")] == [1, 1, 2]
    number = registered["national_registration_no"]
    assert HTTP.get(f"{national}/api/v1/tickets/{number}", headers=AUTH).json()["urge_count"] == 2


def test_a_withdrawal_is_accepted_with_a_withdrawn_event_while_the_matter_is_open(
        national: str, registered: dict[str, Any]) -> None:
    answer = signed_answer(follow_up(national, {
        "operation": "withdraw", "registration_key": registered["idempotency_key"],
        "ticket_id": registered["ticket_id"], "key": key("withdraw"), "at": "2024-06-13T10:00:00+08:00",
        "text": "已与商家和解，申请撤回"}))

    assert answer["outcome"] == "accepted"
    number = registered["national_registration_no"]
    (event,) = HTTP.get(f"{national}/sim/events", params={"national_registration_no": number}).json()["events"]
    assert (event["event"]["status"], event["event"]["opinion"]) == ("WITHDRAWN", "已与商家和解，申请撤回")


def test_a_withdrawal_of_a_matter_already_mediated_is_refused_with_the_reason(
        national: str, registered: dict[str, Any]) -> None:
    number = registered["national_registration_no"]
    for status in ("ACCEPTED", "MEDIATING", "MEDIATED"):
        HTTP.post(f"{national}/sim/tickets/{number}/events", json={"status": status}).raise_for_status()
    answer = signed_answer(follow_up(national, {
        "operation": "withdraw", "registration_key": registered["idempotency_key"],
        "ticket_id": registered["ticket_id"], "key": key("late"), "at": "2024-06-20T10:00:00+08:00"}))

    assert answer["outcome"] == "refused"
    assert "MEDIATED" in answer["reason"]
    assert HTTP.get(f"{national}/sim/stats").json()["withdrawals_refused"] == 1


def test_a_follow_up_of_no_registration_is_404_and_a_bad_one_422(national: str) -> None:
    HTTP.post(f"{national}/sim/reset").raise_for_status()
    unknown = follow_up(national, {"operation": "urge", "registration_key": key("nothing"), "ticket_id": "t-1",
                                   "key": key("u"), "at": "2024-06-13T09:00:00+08:00"})
    assert unknown.status_code == 404
    assert unknown.json()["errors"][0]["rule"] == "not_registered"
    bad = follow_up(national, {"operation": "update", "registration_key": key("x"), "ticket_id": "t-1",
                               "key": key("u"), "at": "2024-06-13T09:00:00+08:00"})
    assert bad.status_code == 422
    assert "ticket" in bad.text


def test_a_follow_up_without_the_token_is_401(national: str) -> None:
    response = follow_up(national, {"operation": "urge"}, headers={})
    assert response.status_code == 401
