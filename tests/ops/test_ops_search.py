"""Finding a ticket by what a caller tells ops, on SQLite and Redis alike; one ticket with everything that happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.ops.ops_support import (
    COMPLAINANT,
    RESPONDENT,
    OpsGateway,
    china_time,
    city_complaint,
    due_soon_receipt_day,
)


async def _ids(gw: OpsGateway, **params: object) -> list[str]:
    response = await gw.get("/api/v1/tickets", role="admin", **params)
    assert response.status_code == 200, response.text
    return [t["ticket_id"] for t in response.json()]


async def _three(gw: OpsGateway) -> tuple[str, str, str]:
    """A complaint from the fixture, one with another complainant and respondent, one from the legacy line."""
    first = await gw.push(city_complaint("KL-SEARCH-1"))
    second = await gw.push(city_complaint(
        "KL-SEARCH-2", contactPhone="13700001111", contactName="李四",
        **{"respondent.name": "黔东南某电器商行", "respondent.creditCode": "92522601MA6DK7FY2A"}))
    third = await gw.push(city_complaint("KL-SEARCH-3", contactPhone="0855-8274966"))
    assert first.ticket_id and second.ticket_id and third.ticket_id
    return first.ticket_id, second.ticket_id, third.ticket_id


async def test_found_by_the_partners_source_ticket_number(gw: OpsGateway) -> None:
    _first, second, _ = await _three(gw)
    assert await _ids(gw, source_ticket_no="KL-SEARCH-2") == [second]
    assert await _ids(gw, source_ticket_no="KL-NOPE") == []


async def test_found_by_the_national_registration_number_once_the_platform_gave_it(gw: OpsGateway) -> None:
    first, _, _ = await _three(gw)
    ticket = await gw.store.get_ticket(first)
    assert ticket is not None
    await gw.store.save_ticket(ticket.model_copy(update={"national_registration_no": "1231552260120240315000057"}),
                               [], expected_revision=ticket.lifecycle.revision)
    assert await _ids(gw, national_registration_no="1231552260120240315000057") == [first]


async def test_found_by_the_complainants_phone_in_any_written_form(gw: OpsGateway) -> None:
    first, _second, third = await _three(gw)
    for written in (COMPLAINANT["phone"], "+86 139 8501 2345", "139-8501-2345", "8613985012345"):
        assert await _ids(gw, complainant_phone=written) == [first], written
    assert await _ids(gw, complainant_phone="0855 8274966") == [third]
    assert await _ids(gw, complainant_phone="13700001112") == []


async def test_the_phone_index_never_holds_the_number_itself(gw: OpsGateway) -> None:
    await _three(gw)
    if gw.runtime.settings.store.kind == "sqlite":
        import sqlite3

        with sqlite3.connect(gw.runtime.settings.resolved_data_dir / "gateway.db") as db:
            hashes = [r[0] for r in db.execute("SELECT complainant_phone_hash FROM tickets")]
        assert all(h and "13985012345" not in h and len(h) == 64 for h in hashes)
    elif gw.runtime.settings.store.kind == "postgres":
        import asyncpg

        from gateway.store.postgres import PostgresStore
        from tests.store.postgres_schemas import POSTGRES_URL

        assert isinstance(gw.runtime.store, PostgresStore)
        conn = await asyncpg.connect(POSTGRES_URL)
        schema = gw.runtime.store.settings.schema
        hashes = [r[0] for r in await conn.fetch(f'SELECT complainant_phone_hash FROM "{schema}".tickets')]  # noqa: S608
        await conn.close()
        assert len(hashes) == 3 and all(h and "13985012345" not in h and len(h) == 64 for h in hashes)
    else:
        from redis.asyncio import Redis

        client = Redis.from_url("redis://127.0.0.1:6379/0")
        keys = [k.decode() async for k in client.scan_iter(match="test-ops-*:ix:complainant_phone_hash:*")]
        await client.aclose()
        assert keys and not any("13985012345" in k for k in keys)


async def test_found_by_the_respondents_credit_code_or_name(gw: OpsGateway) -> None:
    first, second, third = await _three(gw)
    assert set(await _ids(gw, respondent_uscc=RESPONDENT["uscc"])) == {first, third}
    assert await _ids(gw, respondent_uscc="92522601ma6dk7fy2a") == [second]  # written in lower case
    assert await _ids(gw, respondent_name="黔东南某电器商行") == [second]


async def test_found_by_status_and_adapter(gw: OpsGateway) -> None:
    first, second, third = await _three(gw)
    assert set(await _ids(gw, status="RECEIVED", adapter_id="city-12345-rest")) == {first, second, third}
    assert await _ids(gw, status="CLOSED") == []
    assert await _ids(gw, adapter_id="legacy-registration") == []


async def test_found_by_the_time_the_gateway_stored_it(gw: OpsGateway) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    first, second, third = await _three(gw)
    assert await _ids(gw, since=before.isoformat(), limit=10) == [third, second, first]  # newest first
    assert await _ids(gw, until=before.isoformat()) == []
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).date().isoformat()
    assert len(await _ids(gw, since=two_days_ago, until="2999-01-01")) == 3  # days, as the search form sends them


async def test_found_by_deadline_risk_overdue_or_due_soon(gw: OpsGateway) -> None:
    overdue = await gw.push(city_complaint("KL-RISK-OLD"))  # received 2024-03-15: acceptance was due 03-26
    day = due_soon_receipt_day(gw.runtime)
    soon = await gw.push(city_complaint("KL-RISK-SOON", createTime=china_time(day), limitTime=None))
    fresh = datetime.now(UTC).astimezone().date()
    ok = await gw.push(city_complaint("KL-RISK-FRESH", createTime=china_time(fresh, hour=0), limitTime=None))
    enquiry = await gw.push(city_complaint("KL-RISK-ENQUIRY", appealTypeCode="01"))  # 咨询 has no time limit
    assert ok.kind == "created" and enquiry.kind == "created"

    assert await _ids(gw, deadline="overdue") == [overdue.ticket_id]
    assert await _ids(gw, deadline="due_soon") == [soon.ticket_id]
    assert set(await _ids(gw, deadline="at_risk")) == {overdue.ticket_id, soon.ticket_id}
    found = (await gw.get("/api/v1/tickets", role="admin", source_ticket_no="KL-RISK-OLD")).json()[0]
    assert (found["deadline_risk"], found["due_on"]) == ("overdue", "2024-03-26")


async def test_a_bad_search_is_refused_naming_the_field(gw: OpsGateway) -> None:
    bad = await gw.get("/api/v1/tickets", role="viewer", status="DONE")
    assert bad.status_code == 422
    assert bad.json()["field"] == "status"
    assert bad.json()["errors"][0]["value"] == "DONE"
    unknown = await gw.get("/api/v1/tickets", role="viewer", phone="13985012345")
    assert unknown.status_code == 422 and unknown.json()["field"] == "phone"
    unix_seconds = await gw.get("/api/v1/tickets", role="viewer", until="0.5")  # not a time the document offers
    assert unix_seconds.status_code == 422 and unix_seconds.json()["field"] == "until"
    control = await gw.get("/api/v1/tickets", role="viewer", adapter_id="city\x0c")
    assert control.status_code == 422 and control.json()["field"] == "adapter_id"


async def test_a_window_that_ends_before_it_starts_is_empty_not_an_error(gw: OpsGateway) -> None:
    await gw.push(city_complaint("KL-WINDOW-1"))
    for since, until in (("2024-06-12", "2024-06-11"), ("2999-01-01", "2999-01-01")):
        answer = await gw.get("/api/v1/tickets", role="viewer", since=since, until=until)
        assert (answer.status_code, answer.json()) == (200, [])


async def test_one_ticket_comes_with_its_deliveries_attempts_events_and_timeline(gw: OpsGateway) -> None:
    outcome = await gw.push(city_complaint("KL-DETAIL-1"))
    dead = await gw.kill_delivery()
    response = await gw.get(f"/api/v1/tickets/{outcome.ticket_id}", role="operator")
    assert response.status_code == 200
    detail = response.json()
    assert detail["ticket"]["source"]["source_ticket_no"] == "KL-DETAIL-1"
    [delivery] = detail["deliveries"]
    assert delivery["delivery"]["delivery_id"] == dead
    assert delivery["delivery"]["state"] == "dead"
    assert [(a["number"], a["status_code"], a["outcome"]) for a in delivery["attempts"]] == [(1, 400, "permanent")]
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds[:2] == ["received", "registered"]
    assert {"stored", "attempt", "dead"} <= set(kinds)
    assert {e["at"][-6:] for e in detail["timeline"]} == {"+08:00"}  # China time throughout
    assert detail["ticket"]["lifecycle"]["events"] == []
    assert (await gw.get("/api/v1/tickets/01J0000000000000000000000Z")).json()["field"] == "ticket_id"


async def test_status_events_appear_on_the_timeline(gw: OpsGateway) -> None:
    from contracts.status import StatusEvent

    outcome = await gw.push(city_complaint("KL-DETAIL-2"))
    await gw.runtime.status.apply(StatusEvent(event_id="evt-1", ticket_id=outcome.ticket_id, sequence=0,
                                              at=datetime.now(UTC), status="ACCEPTED", org="凯里市市场监督管理局"))
    detail = (await gw.get(f"/api/v1/tickets/{outcome.ticket_id}", role="operator")).json()
    [status] = [e for e in detail["timeline"] if e["kind"] == "status"]
    assert status["label"] == "状态：已接收 → 已受理"
    assert detail["ticket"]["lifecycle"]["events"][0]["to_status"] == "ACCEPTED"


async def test_deliveries_are_listed_by_state_and_destination(gw: OpsGateway) -> None:
    await gw.push(city_complaint("KL-DLV-1"))
    await gw.push(city_complaint("KL-DLV-2"))
    dead = await gw.kill_delivery()
    listed = (await gw.get("/api/v1/deliveries", state="dead", destination="national")).json()
    assert [d["delivery_id"] for d in listed] == [dead]
    assert len((await gw.get("/api/v1/deliveries", state="pending")).json()) == 1
    assert (await gw.get("/api/v1/deliveries", state="dead", destination="credit")).json() == []
    assert (await gw.get("/api/v1/deliveries", state="lost")).json()["field"] == "state"
