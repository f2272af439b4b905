"""Deadlines through the lifecycle in a running gateway, on SQLite, PostgreSQL and Redis alike: status events signed
with the standard library reach the national status route, the ticket view shows each limit started, extended and
ended (met or missed, with the day), deadline risk is read from the store, and 办理时效 answers per organisation and
per limit, drawn on the dashboard. The reporter notice ends when the city partner's real receiver takes the filing
decision's callback, and runs on while that receiver fails.

Days were counted by hand on the 2024 holiday notice (Mid-Autumn 09-15..17, National Day 10-01..07; make-up
working days Sat 09-14, Sun 09-29, Sat 10-12)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TypeVar

import pytest

from simulators.receiver import Action, ReceivedRequest, Receiver, ReceiverThread
from tests.ops.ops_support import TOKENS, OpsGateway, city_complaint, delivery_file_for, receiver, running_gateway
from tests.ops.test_sender_echo import adapters_calling_back_to, eventually

T = TypeVar("T")

STATUS_KEY = b"lifecycle-spec-national-status-key"
STATUS_SECRET = "whsec_" + base64.b64encode(STATUS_KEY).decode()
RECEIVED = "2024-08-28 10:00:00"  # a Wednesday


def signed(body: bytes) -> dict[str, str]:
    """Standard Webhooks headers, made here with hmac and base64 (not with the gateway's own signer)."""
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    mac = hmac.new(STATUS_KEY, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {"content-type": "application/json", "webhook-id": msg_id, "webhook-timestamp": stamp,
            "webhook-signature": f"v1,{base64.b64encode(mac).decode()}"}


@pytest.fixture
async def gw(tmp_path: Path, store_kind: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OpsGateway]:
    monkeypatch.setenv("HIG_NATIONAL_STATUS_SECRETS", STATUS_SECRET)
    async with running_gateway(tmp_path, store_kind=store_kind) as gateway:
        yield gateway


class Platform:
    """The national platform's side: one signed status event after another, per ticket."""

    def __init__(self, gw: OpsGateway) -> None:
        self.gw = gw
        self.sequence: dict[str, int] = {}

    async def send(self, ticket_id: str, status: str, day: str, **extra: Any) -> dict[str, Any]:
        seq = self.sequence[ticket_id] = self.sequence.get(ticket_id, 0) + 1
        body = json.dumps({"event_id": f"evt-{ticket_id[-8:]}-{seq}", "ticket_id": ticket_id, "sequence": seq,
                           "at": f"{day}T15:00:00+08:00", "status": status, "org": "凯里市市场监督管理局",
                           **extra}, ensure_ascii=False).encode()
        response = await self.gw.client.post("/api/v1/national/status", content=body, headers=signed(body))
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        assert answer["outcome"] == "applied", answer
        return answer


async def ticket(gw: OpsGateway, ticket_id: str) -> dict[str, Any]:
    response = await gw.get(f"/api/v1/tickets/{ticket_id}", role="admin")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["ticket"]
    return found


async def limits(gw: OpsGateway, ticket_id: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in (await ticket(gw, ticket_id))["routing"]["deadlines"]}


async def overdue(gw: OpsGateway) -> set[str]:
    response = await gw.get("/api/v1/tickets", role="admin", deadline="overdue")
    assert response.status_code == 200, response.text
    return {t["ticket_id"] for t in response.json()}


async def pushed(gw: OpsGateway, no: str, **changes: Any) -> str:
    outcome = await gw.push(city_complaint(no, createTime=RECEIVED, limitTime=None, **changes))
    assert outcome.kind == "created" and outcome.ticket_id, outcome
    return outcome.ticket_id


async def test_a_signed_acceptance_ends_the_acceptance_limit_and_starts_mediation(gw: OpsGateway) -> None:
    complaint = await pushed(gw, "KL-LIFE-1")
    assert (await limits(gw, complaint))["acceptance"]["due_on"] == "2024-09-06"
    assert complaint in await overdue(gw)

    answer = await Platform(gw).send(complaint, "ACCEPTED", "2024-09-02")
    assert answer["status"] == "ACCEPTED"
    found = await limits(gw, complaint)
    assert {k: (d["outcome"], d["ended_on"], d["ended_by"]) for k, d in found.items()} == {
        "acceptance": ("met", "2024-09-02", "ACCEPTED"), "mediation": (None, None, None)}
    mediation = found["mediation"]
    assert (mediation["starts_on"], mediation["due_on"], mediation["extensions"]) == ("2024-09-02", "2024-11-08", 0)
    assert complaint in await overdue(gw)  # mediation, due 2024-11-08, still runs


async def test_limits_end_met_or_missed_and_on_time_rates_follow_per_organisation_and_limit(gw: OpsGateway) -> None:
    platform = Platform(gw)
    complaint = await pushed(gw, "KL-LIFE-2")
    report = await pushed(gw, "KL-LIFE-3", appealTypeCode="03")
    assert (await limits(gw, report))["clue_check"]["due_on"] == "2024-09-19"

    for status, day in (("ACCEPTED", "2024-09-02"), ("MEDIATING", "2024-09-03"), ("MEDIATED", "2024-11-11")):
        await platform.send(complaint, status, day)
    await platform.send(report, "EXTENDED", "2024-09-18", extends="clue_check")
    await platform.send(report, "EXTENDED", "2024-10-14", extends="clue_check")  # one extension allowed
    await platform.send(report, "ACCEPTED", "2024-10-14")
    await platform.send(report, "FILED", "2024-10-15")

    found = await limits(gw, complaint)
    assert (found["mediation"]["outcome"], found["mediation"]["ended_on"]) == ("missed", "2024-11-11")
    assert found["acceptance"]["outcome"] == "met"
    clue = (await limits(gw, report))["clue_check"]
    assert (clue["due_on"], clue["extensions"], clue["outcome"], clue["ended_on"]) == ("2024-10-15", 1, "met",
                                                                                      "2024-10-15")
    assert [(e["applied"], e["due_on"]) for e in clue["extension_log"]] == [(True, "2024-10-15"),
                                                                            (False, "2024-10-15")]
    notice = (await limits(gw, report))["reporter_notice"]  # the reporter gave a name: told within 5 days
    assert (notice["starts_on"], notice["due_on"], notice["outcome"]) == ("2024-10-15", "2024-10-22", None)
    # The reporter is told when the filing decision reaches the city partner; this gateway delivers no callbacks,
    # so the notice runs on, past its due day (the complaint has nothing running).
    assert (await ticket(gw, report))["lifecycle"]["reporter_notified_at"] is None
    assert await overdue(gw) == {report}

    handler = (await ticket(gw, complaint))["routing"]["handler_org_code"]
    rates = await gw.get("/api/v1/ops/on-time", since="2024-09-01", until="2024-11-30")
    assert rates.status_code == 200, rates.text
    body = rates.json()
    assert [(r["key"], r["met"], r["missed"], r["rate"]) for r in body["by_org"]] == [(handler, 2, 1, 0.6667)]
    assert [(r["key"], r["met"], r["missed"]) for r in body["by_limit"]] == [
        ("acceptance", 1, 0), ("mediation", 0, 1), ("clue_check", 1, 0)]
    assert [(r["key"], r["met"], r["missed"]) for r in body["by_org_and_limit"]] == [
        (f"{handler}/acceptance", 1, 0), (f"{handler}/mediation", 0, 1), (f"{handler}/clue_check", 1, 0)]
    november = (await gw.get("/api/v1/ops/on-time", since="2024-11-01", until="2024-11-30")).json()
    assert [(r["key"], r["met"], r["missed"]) for r in november["by_limit"]] == [("mediation", 0, 1)]


async def test_the_dashboard_draws_the_on_time_rates_in_chinese(gw: OpsGateway) -> None:
    complaint = await pushed(gw, "KL-LIFE-4")
    await Platform(gw).send(complaint, "NOT_ACCEPTED", _today(), not_accepted_reason="1")
    handler = (await ticket(gw, complaint))["routing"]["handler_org_name"]

    login = await gw.client.post("/ops/login", data={"token": TOKENS["viewer"], "next": "/ops"})
    assert login.status_code == 303
    html = (await gw.client.get("/ops")).text
    assert "办理时效" in html and 'id="on-time-chart"' in html
    assert handler in html and "0.0%（0/1）" in html  # accepted or not far past the 7 working days
    # an organisation's name longer than the room before its bar (14 characters) is drawn narrower, never cut off
    labels = re.findall(r'<text class="org"([^>]*)>([^<]+)<title>', html)
    assert handler in [name for _, name in labels]
    for attributes, name in labels:
        assert ('textLength="168"' in attributes) == (len(name) > 14), (name, attributes)
    assert '<tr id="on-time-acceptance"><td>受理时限</td>' in html


async def test_the_ticket_page_shows_each_limit_its_end_and_a_refused_extension(gw: OpsGateway) -> None:
    platform = Platform(gw)
    report = await pushed(gw, "KL-LIFE-5", appealTypeCode="03")
    await platform.send(report, "EXTENDED", "2024-09-18", extends="clue_check")
    await platform.send(report, "EXTENDED", "2024-10-14", extends="clue_check")
    await platform.send(report, "CLOSED", "2024-10-16")

    login = await gw.client.post("/ops/login", data={"token": TOKENS["viewer"], "next": "/ops"})
    assert login.status_code == 303
    page = (await gw.client.get(f"/ops/tickets/{report}")).text
    assert "线索核查时限：到期 2024-10-15" in page
    assert "超期（2024-10-16 已办结）" in page and "已延期 1 次" in page and "延期未生效（2024-10-14）" in page


async def test_an_extension_of_a_limit_the_ticket_does_not_run_under_changes_nothing_and_is_flagged(
        gw: OpsGateway, caplog: pytest.LogCaptureFixture) -> None:
    complaint = await pushed(gw, "KL-LIFE-6")
    with caplog.at_level(logging.WARNING, logger="gateway.tickets.status"):
        await Platform(gw).send(complaint, "EXTENDED", "2024-09-02", extends="mediation")
    found = await limits(gw, complaint)
    assert list(found) == ["acceptance"]
    assert (found["acceptance"]["due_on"], found["acceptance"]["extension_log"]) == ("2024-09-06", [])
    [flagged] = [r for r in caplog.records if r.getMessage() == "extension not applied"]
    assert flagged.__dict__["reason"] == "the ticket runs under no mediation limit"


async def test_a_span_of_days_the_wrong_way_round_is_refused_naming_the_field(gw: OpsGateway) -> None:
    refused = await gw.get("/api/v1/ops/on-time", since="2024-11-30", until="2024-11-01")
    assert refused.status_code == 422
    assert (refused.json()["field"], refused.json()["message_en"]) == (
        "since", "since (2024-11-30) must not be after until (2024-11-01)")
    assert refused.json()["message"] == "起始日 since（2024-11-30）不能晚于截止日 until（2024-11-01）"
    too_long = await gw.get("/api/v1/ops/on-time", since="2020-01-01")  # until today
    assert too_long.status_code == 422 and too_long.json()["field"] == "since"
    not_a_day = await gw.get("/api/v1/ops/on-time", since="30/11/2024")
    assert not_a_day.status_code == 422 and not_a_day.json()["field"] == "since"


@pytest.fixture
def partner() -> Iterator[Receiver]:
    """The city 12345 partner's callback receiver: a real HTTP server on loopback."""
    with ReceiverThread() as rx:
        yield rx


@pytest.fixture
async def delivering_gw(tmp_path: Path, store_kind: str, partner: Receiver,
                        monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OpsGateway]:
    """The gateway with its delivery workers: national lanes to a receiver, the city partner's status callbacks to
    `partner`, retried every few tenths of a second."""
    monkeypatch.setenv("HIG_NATIONAL_STATUS_SECRETS", STATUS_SECRET)
    with receiver() as national:
        async with running_gateway(tmp_path, store_kind=store_kind, workers=True,
                                   delivery_file=delivery_file_for(tmp_path, national.url),
                                   adapters_dir=adapters_calling_back_to(tmp_path, partner.url)) as gateway:
            yield gateway


def callbacks_of(partner: Receiver, idempotency_key: str, sequence: int, answered: int) -> list[ReceivedRequest]:
    """The callbacks of one status of one ticket the partner received and answered so (its key: one per status)."""
    return [r for r in partner.requests(f"{idempotency_key}:{sequence}") if r.answered == answered]


def china_day(at: datetime) -> str:
    return at.astimezone(timezone(timedelta(hours=8))).date().isoformat()


async def ended_notice(gw: OpsGateway, ticket_id: str) -> dict[str, Any] | None:
    notice = (await limits(gw, ticket_id)).get("reporter_notice")
    return notice if notice is not None and notice["outcome"] is not None else None


async def test_a_named_reporter_is_told_when_the_filing_decision_reaches_the_city_partner(
        delivering_gw: OpsGateway, partner: Receiver) -> None:
    gw, today = delivering_gw, _today()
    outcome = await gw.push(city_complaint("KL-LIFE-7", createTime=f"{today} 00:00:00", limitTime=None,
                                           appealTypeCode="03"))
    report = outcome.ticket_id
    assert report is not None
    platform = Platform(gw)
    await platform.send(report, "ACCEPTED", today)
    await platform.send(report, "FILED", today)

    notice = await eventually("the reporter notice ended", lambda: ended_notice(gw, report))
    key = (await ticket(gw, report))["idempotency_key"]
    [filed] = await eventually("the FILED callback answered 200", lambda: _some(callbacks_of(partner, key, 2, 200)))
    day = china_day(filed.received_at)  # the partner's own clock says when the decision reached it
    assert (notice["starts_on"], notice["outcome"], notice["ended_on"], notice["ended_by"]) == (
        today, "met", day, "FILED")
    told_at = datetime.fromisoformat((await ticket(gw, report))["lifecycle"]["reporter_notified_at"])
    assert told_at >= filed.received_at  # kept once the 2xx came back
    assert report not in await overdue(gw)
    login = await gw.client.post("/ops/login", data={"token": TOKENS["viewer"], "next": "/ops"})
    assert login.status_code == 303
    assert f"按时（{day} 立案决定已送达来源系统）" in (await gw.client.get(f"/ops/tickets/{report}")).text

    rates = (await gw.get("/api/v1/ops/on-time", since=day, until=day)).json()
    assert [(r["key"], r["met"], r["missed"]) for r in rates["by_limit"]] == [
        ("clue_check", 1, 0), ("reporter_notice", 1, 0)]


async def test_a_failing_callback_keeps_the_notice_running_until_the_partner_recovers(
        delivering_gw: OpsGateway, partner: Receiver) -> None:
    gw, platform = delivering_gw, Platform(delivering_gw)
    report = await pushed(gw, "KL-LIFE-8", appealTypeCode="03")
    key = (await ticket(gw, report))["idempotency_key"]
    await platform.send(report, "ACCEPTED", "2024-10-14")
    await eventually("the ACCEPTED callback delivered", lambda: _some(callbacks_of(partner, key, 1, 200)))

    partner.set_outage(Action(status=500, body='{"code":500,"msg":"回调处理异常"}'))
    await platform.send(report, "FILED", "2024-10-15")
    await eventually("the FILED callback refused", lambda: _some(callbacks_of(partner, key, 2, 500)))
    notice = (await limits(gw, report))["reporter_notice"]
    assert (notice["due_on"], notice["outcome"]) == ("2024-10-22", None)  # still running, long past due
    assert (await ticket(gw, report))["lifecycle"]["reporter_notified_at"] is None
    assert report in await overdue(gw)

    partner.set_outage(None)
    ended = await eventually("the reporter notice ended", lambda: ended_notice(gw, report))
    [filed] = await eventually("the FILED callback answered 200", lambda: _some(callbacks_of(partner, key, 2, 200)))
    day = china_day(filed.received_at)
    assert (ended["outcome"], ended["ended_on"], ended["ended_by"]) == ("missed", day, "FILED")
    assert report not in await overdue(gw)
    rates = (await gw.get("/api/v1/ops/on-time", since=day, until=day)).json()
    assert [(r["key"], r["met"], r["missed"]) for r in rates["by_limit"]] == [("reporter_notice", 0, 1)]


async def _some(found: list[T]) -> list[T] | None:
    return found or None


def _today() -> str:
    return datetime.now(timezone(timedelta(hours=8))).date().isoformat()
