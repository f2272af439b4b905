"""Partner follow-ups at their edges, through a live gateway and the national platform simulator on loopback: a
canonical sender's urge, supplement and withdrawal; a new version taken like a ticket (screened again, its handler
and deadlines worked out again); a version 1 that comes after version 2; follow-ups queued behind a dead forward
replayed after it."""

from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.peer import with_fresh_number
from tests.e2e.e2e_support import ENVIRONMENT, Timing, World, running_world, wait_for
from tests.sample_tickets import ticket_data

pytestmark = pytest.mark.slow

OPERATOR = ENVIRONMENT["HIG_OPS_TOKEN_OPERATOR"]
CANONICAL_KEY = ENVIRONMENT["PARTNER_CANONICAL_API_KEY"]
# Neighbours' noise: another authority's matter by the jurisdiction screen's rule return.noise-neighbours.
NOISE = {"appealTitle": "楼上邻居半夜施工噪音扰民",
         "appealContent": "市民反映楼上邻居连续一周半夜施工，噪音扰民，无法休息。",
         "appealRequest": "要求楼上停止半夜施工"}


def registered(world: World, ticket_id: str) -> str:
    """The ticket's national registration number, once the forward has been taken."""
    return str(wait_for(f"the registration of {ticket_id}",
                        lambda: world.ticket(ticket_id)["ticket"]["national_registration_no"], 60))


def platform_copy(world: World, ticket_id: str) -> dict[str, Any]:
    return next(r for r in world.national_tickets() if r["ticket_id"] == ticket_id)


def national_deliveries(world: World, ticket_id: str) -> list[dict[str, Any]]:
    return [d for d in world.ticket(ticket_id)["deliveries"] if d["delivery"]["destination"] == "national"]


def all_delivered(world: World, ticket_id: str, count: int) -> list[dict[str, Any]] | None:
    found = national_deliveries(world, ticket_id)
    done = len(found) == count and all(d["delivery"]["state"] == "delivered" for d in found)
    return found if done else None


def operator(world: World, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return world.client.request(method, f"{world.gateway_url}{path}", headers={"Authorization": f"Bearer {OPERATOR}"},
                                **kwargs)


def reviews(world: World) -> list[str]:
    """The tickets waiting for an operator's jurisdiction decision."""
    return [r["ticket"]["ticket_id"] for r in operator(world, "GET", "/api/v1/reviews").json()]


# -- 1. canonical senders ---------------------------------------------------------------------------------------
def follow_up(world: World, body: dict[str, Any], adapter_id: str = "canonical") -> httpx.Response:
    return world.client.post(f"{world.gateway_url}/api/v1/inbound/{adapter_id}/tickets/follow-ups", json=body,
                             headers={"X-Api-Key": CANONICAL_KEY})


def test_a_canonical_sender_supplements_urges_and_withdraws_its_ticket_at_the_platform(tmp_path: Path) -> None:
    with running_world(tmp_path) as world:
        number = "L12315-GAPS-0001"
        ticket = ticket_data("complaint", number)
        del ticket["source"]["adapter_id"]
        pushed = world.client.post(f"{world.gateway_url}/api/v1/inbound/canonical/tickets", json=ticket,
                                   headers={"X-Api-Key": CANONICAL_KEY})
        assert pushed.status_code == 202, pushed.text
        ticket_id = pushed.json()["ticket_id"]
        registered(world, ticket_id)

        # The sender names the ticket as it did: its source system (the ticket's, here a former line) and number.
        named = {"source_system": ticket["source"]["source_system"], "source_ticket_no": number}
        supplement = follow_up(world, {"kind": "supplement", **named, "text": "消费者补充：商家承诺三日内退货但未兑现",
                                       "reference": "BC-0001"})
        urge = {"kind": "urge", **named, "text": "消费者来电催办", "reference": "CB-0001"}
        urged, urged_again = follow_up(world, urge), follow_up(world, urge)
        withdrawn = follow_up(world, {"kind": "withdrawal", **named, "text": "已与商家和解"})
        assert [(r.status_code, r.json()) for r in (supplement, urged, urged_again, withdrawn)] == [
            (200, {"ticket_id": ticket_id, "repeat": False, "follow_up": "supplement"}),
            (200, {"ticket_id": ticket_id, "repeat": False, "follow_up": "urge"}),
            (200, {"ticket_id": ticket_id, "repeat": True, "follow_up": "urge"}),
            (200, {"ticket_id": ticket_id, "repeat": False, "follow_up": "withdrawal"})]

        wait_for("the platform took the update, the urge and the withdrawal",
                 lambda: all_delivered(world, ticket_id, 4), 60)
        wait_for("the platform's WITHDRAWN", lambda: world.ticket(ticket_id)["ticket"]["lifecycle"]["status"]
                 == "WITHDRAWN" or None, 60)
        copy = platform_copy(world, ticket_id)
        assert (copy["version"], copy["urge_count"], copy["status"]) == ("2", 1, "WITHDRAWN"), copy
        updates = world.ticket(ticket_id)["ticket"]["sender_updates"]
        assert [(v["version"], v["kind"]) for v in updates["versions"]] == [("1", "original"), ("2", "supplement")]
        assert updates["withdrawal"]["state"] == "accepted"


def test_a_canonical_follow_up_that_breaks_a_rule_is_refused_naming_the_field_and_rule(tmp_path: Path) -> None:
    with running_world(tmp_path) as world:
        no_kind = follow_up(world, {"source_ticket_no": "L12315-GAPS-0002", "text": "催办"})
        bad_kind = follow_up(world, {"kind": "praise", "source_ticket_no": "L12315-GAPS-0002"})
        bare_supplement = follow_up(world, {"kind": "supplement", "source_ticket_no": "L12315-GAPS-0002"})
        unknown = follow_up(world, {"kind": "urge", "source_ticket_no": "L12315-GAPS-0002"})
        mapped_adapter = follow_up(world, {"kind": "urge", "source_ticket_no": "X"}, adapter_id="city-12345-rest")

        def named(response: httpx.Response) -> list[tuple[str, str]]:
            return [(e["field"], e["rule"]) for e in response.json()["errors"]]

        assert (no_kind.status_code, no_kind.json()["error"], named(no_kind)) == (
            422, "invalid_follow_up", [("kind", "missing")])
        assert (bad_kind.status_code, named(bad_kind)) == (422, [("kind", "literal_error")])
        assert (bare_supplement.status_code, named(bare_supplement)) == (422, [("text", "required_for_supplement")])
        assert (unknown.status_code, named(unknown)) == (422, [("follow_up.source_ticket_no", "unknown_ticket")])
        assert unknown.json()["quarantine_id"]
        assert (mapped_adapter.status_code, mapped_adapter.json()["error"]) == (404, "not_canonical")


# -- 2. a new version is taken like a ticket ---------------------------------------------------------------------
def test_a_new_version_that_screens_as_another_authoritys_matter_is_held_until_an_operator_accepts_it(
        tmp_path: Path) -> None:
    with running_world(tmp_path) as world:
        first = with_fresh_number(world.city.tickets["01-food-complaint"], ("hotlineNo",))
        ticket_id = world.city.push(first).body["ticket_id"]
        registered(world, ticket_id)
        wait_for("the forward delivered", lambda: all_delivered(world, ticket_id, 1), 60)

        noisy = {**world.city.tickets["09-food-complaint-version-2"], **NOISE, "hotlineNo": first["hotlineNo"]}
        answer = world.city.push(noisy)
        assert (answer.status, answer.body) == (200, {"ticket_id": ticket_id, "repeat": False,
                                                      "follow_up": "new_version"})
        ticket = world.ticket(ticket_id)["ticket"]
        version = ticket["sender_updates"]["versions"][-1]
        assert (version["version"], version["screened"], version["held"]) == ("2", "return", True)
        decision = ticket["routing"]["jurisdiction"]
        assert (decision["outcome"], decision["rule_id"]) == ("review", "return.noise-neighbours")
        assert ticket_id in reviews(world)
        # Nothing was sent for it: the platform still holds version 1.
        assert [d["delivery"]["kind"] for d in national_deliveries(world, ticket_id)] == ["forward"]
        assert platform_copy(world, ticket_id)["version"] == "1"

        settled = operator(world, "POST", f"/api/v1/tickets/{ticket_id}/jurisdiction",
                           json={"outcome": "accept", "reason": "消费者同时反映装修建材质量问题，属市场监管职责"})
        assert settled.status_code == 200, settled.text
        wait_for("the held update delivered", lambda: all_delivered(world, ticket_id, 2), 60)
        assert platform_copy(world, ticket_id)["version"] == "2"
        after = world.ticket(ticket_id)["ticket"]
        assert after["sender_updates"]["versions"][-1]["held"] is False
        assert after["routing"]["jurisdiction"]["outcome"] == "accept"
        assert ticket_id not in reviews(world)


def test_a_held_version_an_operator_returns_is_the_partners_last_word_and_its_registration_is_withdrawn(
        tmp_path: Path) -> None:
    """The partner hears one 退单 (已退回, with the operator's reason) and nothing after it: the platform's WITHDRAWN
    of the registration the return withdrew is kept on the ticket, not called back as 处理中/未解决."""
    with running_world(tmp_path) as world:
        first = with_fresh_number(world.city.tickets["01-food-complaint"], ("hotlineNo",))
        ticket_id = world.city.push(first).body["ticket_id"]
        registered(world, ticket_id)
        noisy = {**world.city.tickets["09-food-complaint-version-2"], **NOISE, "hotlineNo": first["hotlineNo"]}
        assert world.city.push(noisy).body["follow_up"] == "new_version"

        reason = "反映的是邻里施工噪音，不属于市场监管职责"
        settled = operator(world, "POST", f"/api/v1/tickets/{ticket_id}/jurisdiction",
                           json={"outcome": "return", "reason": reason, "competent_authority": "生态环境部门"})
        assert settled.status_code == 200, settled.text
        wait_for("the platform's WITHDRAWN", lambda: world.ticket(ticket_id)["ticket"]["lifecycle"]["status"]
                 == "WITHDRAWN" or None, 60)
        ticket = world.ticket(ticket_id)["ticket"]
        assert (ticket["routing"]["jurisdiction"]["outcome"], ticket["sender_updates"]["withdrawal"]["state"]) == (
            "return", "accepted")
        assert platform_copy(world, ticket_id)["status"] == "WITHDRAWN"
        assert ticket_id not in reviews(world)

        # The status change and whatever it sends are one write: once WITHDRAWN is on the ticket, every callback
        # it will ever send for it is among its deliveries.
        def callbacks_sent() -> list[dict[str, Any]] | None:
            found = [d for d in world.ticket(ticket_id)["deliveries"]
                     if d["delivery"]["destination"] == "callback:city-12345-rest"]
            return found if found and all(d["delivery"]["state"] == "delivered" for d in found) else None
        assert len(wait_for("the 退单 delivered", callbacks_sent, 60)) == 1

        heard = [c.body for c in world.city.callbacks.received()
                 if isinstance(c.body, dict) and c.body.get("hotlineNo") == first["hotlineNo"]]
        assert [(h["handleStatus"], h.get("handleResult")) for h in heard] == [("3", "3")]  # 已退回, 退单
        assert (heard[0]["handleOpinion"], heard[0]["returnReason"]) == (reason, "不属于市场监督管理部门职责"), heard


# -- 2a. versions of one number racing ---------------------------------------------------------------------------
def push_together(world: World, *payloads: dict[str, Any]) -> list[Any]:
    """Push the payloads at the same moment, each from a thread of its own (two partner connections)."""
    start = threading.Barrier(len(payloads))

    def push(payload: dict[str, Any]) -> Any:
        start.wait()
        return world.city.push(payload)

    with ThreadPoolExecutor(len(payloads)) as pool:
        return list(pool.map(push, payloads))


def test_versions_1_and_2_of_one_number_pushed_together_make_one_ticket_and_one_registration(
        tmp_path: Path) -> None:
    with running_world(tmp_path) as world:
        numbers = []
        for n in range(8):
            first = with_fresh_number(world.city.tickets["01-food-complaint"], ("hotlineNo",))
            second = {**world.city.tickets["09-food-complaint-version-2"], "hotlineNo": first["hotlineNo"]}
            answers = push_together(world, *((first, second) if n % 2 else (second, first)))
            assert all(a.status in (200, 202) for a in answers), answers
            assert len({a.body["ticket_id"] for a in answers}) == 1, answers
            numbers.append((str(first["hotlineNo"]), answers[0].body["ticket_id"]))

        for number, ticket_id in numbers:
            assert [t["ticket_id"] for t in world.tickets(adapter_id="city-12345-rest")
                    if t["source_ticket_no"] == number] == [ticket_id]
            ticket = world.ticket(ticket_id)["ticket"]
            assert ticket["source"]["source_version"] == "2"
            assert "同批次货架上仍有4盒过期酸奶" in ticket["registration"]["content"]  # said by version 2 only
            kinds = [(v["version"], v["kind"]) for v in ticket["sender_updates"]["versions"]]
            assert kinds in ([("1", "original"), ("2", "new_version")], [("2", "original"), ("1", "stale")]), kinds
            registered(world, ticket_id)
            wait_for(f"version 2 of {number} at the platform",
                     lambda t=ticket_id: platform_copy(world, t)["version"] == "2" or None, 60)
        for _, ticket_id in numbers:
            assert len([r for r in world.national_tickets() if r["ticket_id"] == ticket_id]) == 1
        assert world.national_stats()["accepted"] == len(numbers), world.national_stats()


def test_a_new_version_that_moves_the_matter_gets_a_new_handler_and_deadlines_and_keeps_the_old_ones(
        tmp_path: Path) -> None:
    with running_world(tmp_path) as world:
        first = with_fresh_number(world.city.tickets["01-food-complaint"], ("hotlineNo",))
        ticket_id = world.city.push(first).body["ticket_id"]
        before = world.ticket(ticket_id)["ticket"]
        assert before["routing"]["handler_org_name"].startswith("凯里市市场监督管理局")
        assert [d["kind"] for d in before["routing"]["deadlines"]] == ["acceptance"]

        # Version 2: a report (举报) of a shop in 镇远县, not a complaint in 凯里市.
        moved = {**world.city.tickets["09-food-complaint-version-2"], "hotlineNo": first["hotlineNo"],
                 "areaCode": "522625", "areaName": "镇远县", "appealTypeCode": "03", "appealTypeName": "举报",
                 "eventAddress": "镇远县舞阳镇顺城街12号"}
        assert world.city.push(moved).body == {"ticket_id": ticket_id, "repeat": False, "follow_up": "new_version"}
        wait_for("the update delivered", lambda: all_delivered(world, ticket_id, 2), 60)

        after = world.ticket(ticket_id)["ticket"]
        routing = after["routing"]
        assert routing["handler_org_name"].startswith("镇远县市场监督管理局")
        assert [d["kind"] for d in routing["deadlines"]] == ["clue_check"]
        # Counted from the first receipt (2024-03-15, a Friday): 15 working days.
        assert routing["deadlines"][0]["starts_on"] == before["routing"]["deadlines"][0]["starts_on"]
        assert after["source"]["source_received_at"] == before["source"]["source_received_at"]
        earlier = routing["revisions"]
        assert [(r["version"], r["handler_org_name"], [d["kind"] for d in r["deadlines"]]) for r in earlier] == [
            ("2", before["routing"]["handler_org_name"], ["acceptance"])]
        assert platform_copy(world, ticket_id)["version"] == "2"


# -- 3. an older version come late -------------------------------------------------------------------------------
def test_a_version_1_pushed_after_version_2_is_a_stale_repeat_of_the_same_ticket_its_payload_kept(
        tmp_path: Path) -> None:
    with running_world(tmp_path) as world:
        second = with_fresh_number(world.city.tickets["09-food-complaint-version-2"], ("hotlineNo",))
        number = str(second["hotlineNo"])
        created = world.city.push(second)
        assert created.status == 202, created.body
        ticket_id = created.body["ticket_id"]
        first = {**world.city.tickets["01-food-complaint"], "hotlineNo": number}

        late, again = world.city.push(first), world.city.push(first)
        assert (late.status, late.body) == (200, {"ticket_id": ticket_id, "repeat": True,
                                                  "follow_up": "stale_version"})
        assert (again.status, again.body) == (200, {"ticket_id": ticket_id, "repeat": True,
                                                    "follow_up": "stale_version"})
        assert [t["ticket_id"] for t in world.tickets(adapter_id="city-12345-rest")
                if t["source_ticket_no"] == number] == [ticket_id]
        ticket = world.ticket(ticket_id)["ticket"]
        assert ticket["source"]["source_version"] == "2"
        assert [(v["version"], v["kind"]) for v in ticket["sender_updates"]["versions"]] == [
            ("2", "original"), ("1", "stale")]
        raw = operator(world, "GET", f"/api/v1/tickets/{ticket_id}/raw", params={"version": "1"})
        assert (raw.status_code, raw.json()["appealContent"]) == (200, first["appealContent"])
        assert "version" not in raw.json()  # version 1 names none: the default
        wait_for("the forward delivered", lambda: all_delivered(world, ticket_id, 1), 60)
        assert len([r for r in world.national_tickets() if r["ticket_id"] == ticket_id]) == 1


# -- 4. follow-ups behind a dead forward -------------------------------------------------------------------------
def test_follow_ups_queued_behind_a_dead_forward_go_after_it_in_order_when_it_is_replayed(tmp_path: Path) -> None:
    with running_world(tmp_path, timing=Timing(national_max_attempts=2)) as world:
        world.national("POST", "/sim/faults", json={"error_ratio": 1.0, "error_status": 503})
        first = with_fresh_number(world.city.tickets["01-food-complaint"], ("hotlineNo",))
        ticket_id = world.city.push(first).body["ticket_id"]

        def forward_dead() -> dict[str, Any] | None:
            found = [d["delivery"] for d in national_deliveries(world, ticket_id)]
            return found[0] if found and found[0]["state"] == "dead" else None
        forward = wait_for("the forward dead-lettered", forward_dead, 60)
        world.national("DELETE", "/sim/faults")

        for name in ("09-food-complaint-version-2", "11-food-complaint-urge"):
            pushed = world.city.push({**world.city.tickets[name], "hotlineNo": first["hotlineNo"]})
            assert pushed.status == 200 and pushed.body["repeat"] is False, pushed.body

        def follow_ups_settled() -> list[dict[str, Any]] | None:
            found = [d["delivery"] for d in national_deliveries(world, ticket_id)][1:]
            return found if len(found) == 2 and all(d["state"] == "dead" for d in found) else None
        # The platform refuses follow-ups of a registration it does not have: they die behind the dead forward.
        wait_for("the follow-ups refused while the forward is dead", follow_ups_settled, 60)

        replayed = operator(world, "POST", "/api/v1/deliveries/replay",
                            json={"delivery_ids": [forward["delivery_id"]]})
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["count"] == 3

        done = wait_for("the forward and its follow-ups delivered", lambda: all_delivered(world, ticket_id, 3), 60)
        kinds = [d["delivery"]["kind"] for d in sorted(done, key=lambda d: d["delivery"]["created_at"])]
        assert kinds == ["forward", "update", "urge"]
        # In order: each follow-up's successful attempt started after the one before it was delivered.
        ordered = sorted(done, key=lambda d: d["delivery"]["created_at"])
        for ahead, behind in itertools.pairwise(ordered):
            succeeded = [a for a in behind["attempts"] if a["outcome"] == "success"]
            assert succeeded and succeeded[-1]["started_at"] >= ahead["delivery"]["delivered_at"], (ahead, behind)
        copy = platform_copy(world, ticket_id)
        assert (copy["version"], copy["urge_count"]) == ("2", 1), copy
