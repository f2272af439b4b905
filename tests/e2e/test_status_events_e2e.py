"""Status intake and credit enrichment end to end: the national simulator misbehaves on purpose (resends, forced
sequences, held events, illegal transitions) and the credit system answers, is slow or is down.

One calm world for the module: no national faults and no auto-advance, so each test issues the events itself.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from simulators.peer import ReceivedCallback, with_fresh_number
from tests.e2e.e2e_support import Timing, World, running_world, wait_for

pytestmark = pytest.mark.slow

MEDIATED_RESULT = {"text": "经营者同意退货并退还货款。", "mediation_agreement_no": "TJ-E2E-0001",
                   "recovered_amount": "13.80"}
KNOWN_USCC = "91522601MA6DL4KQ33"  # on the credit simulator's lists (its fixture 01-serious-violation-clue)
OTHER_USCC = "91522622MA6H0TR517"  # also known to it (fixture 02-abnormal-operation-informant)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    # Two attempts per event, at most 0.5 s apart: an event the gateway calls too early fails fast, so the
    # test can send the missing one (the simulator sends one ticket's events one at a time, in order).
    timing = Timing(auto_advance_seconds=None, event_max_attempts=2, event_retry_max_seconds=0.5,
                    credit_lookup_timeout=0.5)
    with running_world(tmp_path_factory.mktemp("e2e-status"), timing=timing) as running:
        yield running


def push_city(world: World, fixture: str = "01-food-complaint", *, uscc: str | None = None) -> tuple[str, str]:
    """Push a fresh city ticket; (ticket id, hotlineNo)."""
    payload = with_fresh_number(world.city.tickets[fixture], ("hotlineNo",))
    if uscc is not None:
        payload["respondent"]["creditCode"] = uscc
    result = world.city.push(payload)
    assert result.status == 202, result.body
    return str(result.body["ticket_id"]), str(payload["hotlineNo"])


def registered(world: World, ticket_id: str) -> str:
    """The national registration number, once the forward is through and the gateway has kept it."""
    def number() -> str | None:
        found: str | None = world.ticket(ticket_id)["ticket"]["national_registration_no"]
        return found
    return wait_for(f"ticket {ticket_id} registered nationally", number, 15, 0.1)


def city_callbacks(world: World, hotline_no: str) -> list[ReceivedCallback]:
    return [c for c in world.city.callbacks.received()
            if isinstance(c.body, dict) and c.body.get("hotlineNo") == hotline_no]


def wait_callbacks(world: World, hotline_no: str, count: int) -> list[ReceivedCallback]:
    return wait_for(f"{count} callbacks for {hotline_no}",
                    lambda: (found if len(found := city_callbacks(world, hotline_no)) >= count else None), 10, 0.1)


def codes(record: dict[str, Any]) -> list[int | None]:
    """The gateway's answers to each attempt at one status event, as the platform recorded them."""
    return [attempt["status_code"] for attempt in record["attempts"]]


def lifecycle(world: World, ticket_id: str) -> dict[str, Any]:
    found: dict[str, Any] = world.ticket(ticket_id)["ticket"]["lifecycle"]
    return found


def test_a_resent_and_an_out_of_order_event_change_nothing_and_call_back_once_per_status(world: World) -> None:
    ticket_id, hotline_no = push_city(world)
    number = registered(world, ticket_id)

    accepted = world.issue_event(number, status="ACCEPTED", opinion="予以受理")["event"]["event_id"]
    assert codes(world.wait_event_settled(accepted)) == [200]
    wait_callbacks(world, hotline_no, 1)

    # Duplicate: the same event (same body and webhook-id, fresh signature) again.
    world.resend_event(accepted)
    assert codes(world.wait_event_settled(accepted)) == [200, 200]

    # Out of order: MEDIATING (2) is held back, MEDIATED (3) arrives first and cannot follow ACCEPTED.
    mediating = world.issue_event(number, status="MEDIATING", deliver=False)["event"]["event_id"]
    mediated = world.issue_event(number, status="MEDIATED", result=MEDIATED_RESULT)["event"]["event_id"]
    early = world.wait_event_settled(mediated)
    assert codes(early) == [425, 425] and early["state"] == "failed"  # Too Early: the platform is to retry
    assert lifecycle(world, ticket_id)["status"] == "ACCEPTED"
    world.resend_event(mediating)
    assert codes(world.wait_event_settled(mediating)) == [200]
    world.resend_event(mediated)  # the platform's retry, now in order
    assert codes(world.wait_event_settled(mediated))[-1] == 200

    # Stale: an event under an old sequence (1), with a new id, is acknowledged and ignored.
    stale = world.issue_event(number, status="WITHDRAWN", sequence=1)["event"]["event_id"]
    assert codes(world.wait_event_settled(stale)) == [200]
    closed = world.issue_event(number, status="CLOSED", opinion="调解成功，办结。")["event"]["event_id"]
    assert codes(world.wait_event_settled(closed)) == [200]

    state = lifecycle(world, ticket_id)
    assert state["status"] == "CLOSED"
    assert [(e["sequence"], e["to_status"]) for e in state["events"]] == [
        (1, "ACCEPTED"), (2, "MEDIATING"), (3, "MEDIATED"), (4, "CLOSED")]
    assert [e["event_id"] for e in state["events"]] == [accepted, mediating, mediated, closed]
    assert state["rejected_events"] == []

    received = wait_callbacks(world, hotline_no, 4)
    time.sleep(0.5)  # a double callback would be on its way by now
    received = city_callbacks(world, hotline_no)
    assert len(received) == 4 and all(c.verified and not c.duplicate for c in received)
    assert len({c.webhook_id for c in received}) == 4
    assert len(Counter(c.headers.get("idempotency-key") for c in received)) == 4
    assert sorted(str(c.body["handleStatus"]) for c in received) == ["1", "1", "1", "2"]  # 受理 调解 调解成功 办结
    callbacks = [d for d in world.deliveries(ticket_id=ticket_id) if d["destination"] == "callback:city-12345-rest"]
    assert len(callbacks) == 4 and all(d["state"] == "delivered" for d in callbacks)
    echo = world.ticket(ticket_id)["echo"]  # the sender's echo: the city has heard the last status
    assert (echo["latest_status"], echo["heard_status"], echo["heard_sequence"], echo["behind_since"]) == (
        "CLOSED", "CLOSED", 4, None)


def deadlines(world: World, ticket_id: str) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in world.ticket(ticket_id)["ticket"]["routing"]["deadlines"]}


def test_the_platforms_events_start_extend_and_end_the_tickets_time_limits(world: World) -> None:
    complaint, _ = push_city(world)
    accepted = world.issue_event(registered(world, complaint), status="ACCEPTED")["event"]
    assert codes(world.wait_event_settled(accepted["event_id"])) == [200]
    limits = deadlines(world, complaint)
    assert limits["acceptance"]["outcome"] in ("met", "missed") and limits["acceptance"]["ended_by"] == "ACCEPTED"
    assert limits["mediation"]["starts_on"] == accepted["at"][:10] and limits["mediation"]["outcome"] is None

    report, _ = push_city(world, "02-report-with-attachments")
    number = registered(world, report)
    first_due = deadlines(world, report)["clue_check"]["due_on"]
    for _ in range(2):
        extended = world.issue_event(number, status="EXTENDED", extends="clue_check")["event"]["event_id"]
        assert codes(world.wait_event_settled(extended)) == [200]
    clue = deadlines(world, report)["clue_check"]
    assert clue["extensions"] == 1 and clue["due_on"] > first_due
    assert [e["applied"] for e in clue["extension_log"]] == [True, False]  # the rule allows one extension


def test_an_illegal_transition_is_refused_with_409_and_kept_on_the_ticket(world: World) -> None:
    ticket_id, hotline_no = push_city(world, "03-enquiry-minimal")
    number = registered(world, ticket_id)
    accepted = world.issue_event(number, status="ACCEPTED")["event"]["event_id"]
    assert codes(world.wait_event_settled(accepted)) == [200]

    mediated = world.issue_event(number, status="MEDIATED", result=MEDIATED_RESULT)
    assert mediated["transition_allowed"] is False
    record = world.wait_event_settled(mediated["event"]["event_id"])
    assert codes(record) == [409] and record["state"] == "failed"  # not retried: the platform must correct it

    closed = world.issue_event(number, status="CLOSED", opinion="已答复，办结。")["event"]["event_id"]
    assert codes(world.wait_event_settled(closed)) == [200]  # sequence 3 after the refused 2: legal, applied
    reopened = world.issue_event(number, status="ACCEPTED")["event"]["event_id"]
    assert codes(world.wait_event_settled(reopened)) == [409]  # nothing follows 办结

    state = lifecycle(world, ticket_id)
    assert state["status"] == "CLOSED"
    assert [e["to_status"] for e in state["events"]] == ["ACCEPTED", "CLOSED"]
    rejected = state["rejected_events"]
    assert [(r["event_id"], r["sequence"], r["status"]) for r in rejected] == [
        (mediated["event"]["event_id"], 2, "MEDIATED"), (reopened, 4, "ACCEPTED")]
    assert "from ACCEPTED to MEDIATED" in rejected[0]["reason"] and "from CLOSED to ACCEPTED" in rejected[1]["reason"]
    timeline = [entry["kind"] for entry in world.ticket(ticket_id)["timeline"]]
    assert timeline.count("rejected_event") == 2

    time.sleep(0.5)
    received = city_callbacks(world, hotline_no)
    assert sorted(str(c.body["handleStatus"]) for c in received) == ["1", "2"]  # ACCEPTED and CLOSED only


def test_the_credit_look_up_enriches_when_answered_and_never_holds_a_ticket_up(world: World) -> None:
    enricher = world.runtime.enricher
    assert enricher is not None
    answer = world.credit.lookup(KNOWN_USCC)
    assert answer["flags"], answer

    ticket_id, _ = push_city(world, uscc=KNOWN_USCC)
    respondent = world.ticket(ticket_id)["ticket"]["respondent"]
    assert respondent["uscc"] == KNOWN_USCC and sorted(respondent["credit_flags"]) == sorted(answer["flags"])
    assert enricher.failures == 0

    # Slow: the credit system answers after 5 s; the look-up gives up after 0.5 s and the ticket goes on. That it
    # did not wait for the answer shows without a clock: had it waited, the look-up would have succeeded.
    world.client.post(f"{world.credit.url}/sim/faults", json={"latency_seconds": 5.0}).raise_for_status()
    try:
        slow_id, _ = push_city(world, uscc=OTHER_USCC)
    finally:
        world.client.post(f"{world.credit.url}/sim/faults", json={"latency_seconds": 0.0}).raise_for_status()
    assert enricher.failures == 1

    # Down: the credit system answers 503 (the look-up is also pausing after the failure above).
    world.client.post(f"{world.credit.url}/sim/faults", json={"down": True}).raise_for_status()
    try:
        down_id, _ = push_city(world, uscc=OTHER_USCC)
    finally:
        world.client.post(f"{world.credit.url}/sim/faults", json={"down": False}).raise_for_status()

    for held_up in (slow_id, down_id):
        ticket = world.ticket(held_up)["ticket"]
        assert ticket["respondent"]["uscc"] == OTHER_USCC and ticket["respondent"]["credit_flags"] == []
        assert registered(world, held_up)  # forwarded to the national platform all the same
