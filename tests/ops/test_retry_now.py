"""Retry now: a retrying delivery goes at once after a partner's fault is fixed, by id or by filter, from the API and
the dashboard, audited; a replay explains each delivery it left alone."""

from __future__ import annotations

from pathlib import Path

from gateway.store.base import DeliveryFilter
from tests.ops.ops_support import OpsGateway, city_complaint, delivery_file_for, receiver, running_gateway
from tests.ops.test_ops_dashboard import _csrf, _sign_in
from tests.ops.test_ops_metrics import eventually

HOUR_BACKOFF = {"backoff": "schedule", "schedule": ["1h"], "max_attempts": 5}


async def _state(gw: OpsGateway, ticket_id: str, destination: str = "national") -> tuple[str, str]:
    receipts = await gw.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id, destination=destination))
    return (receipts[0].delivery_id, receipts[0].state.value) if receipts else ("", "")


async def _retrying(gw: OpsGateway, no: str) -> tuple[str, str]:
    """A fresh complaint whose national delivery failed once (503) and now waits an hour: (ticket, delivery)."""
    outcome = await gw.push(city_complaint(no))
    assert outcome.ticket_id is not None
    ticket_id = outcome.ticket_id

    async def retrying() -> bool:
        return (await _state(gw, ticket_id))[1] == "retrying"

    await eventually(retrying, within=60)
    return ticket_id, (await _state(gw, ticket_id))[0]


async def test_retry_now_by_id_sends_a_retrying_delivery_at_once_and_explains_a_second_ask(tmp_path: Path) -> None:
    with receiver() as peer:
        peer.accept, peer.refuse_status = False, 503
        delivery = delivery_file_for(tmp_path, peer.url, retry=HOUR_BACKOFF)
        async with running_gateway(tmp_path, workers=True, delivery_file=delivery) as gw:
            ticket_id, delivery_id = await _retrying(gw, "KL-RETRY-1")
            peer.accept = True  # the partner fixed its side; without retry now it would wait an hour

            response = await gw.post("/api/v1/deliveries/replay", "operator", {"delivery_ids": [delivery_id]})
            assert response.status_code == 200
            assert response.json()["delivery_ids"] == [delivery_id] and response.json()["not_replayed"] == []

            async def delivered() -> bool:
                return (await _state(gw, ticket_id))[1] == "delivered"

            await eventually(delivered, within=60)
            again = (await gw.post("/api/v1/deliveries/replay", "operator", {"delivery_ids": [delivery_id]})).json()
            assert again["count"] == 0
            assert again["not_replayed"] == [{"delivery_id": delivery_id, "state": "delivered", "reason": "delivered",
                                              "message": "已投递成功，无需重新投递",
                                              "message_en": "already delivered; nothing to replay"}]
            audit = (await gw.get("/api/v1/audit", "admin", action="replay")).json()
            assert [e["detail"].get("not_replayed") for e in audit] == [{delivery_id: "delivered"}, None]
            assert audit[1]["ticket_ids"] == [ticket_id]


async def test_retry_now_by_filter_takes_retrying_deliveries_not_dead_letters(tmp_path: Path) -> None:
    with receiver() as peer:
        peer.accept, peer.refuse_status = False, 503
        delivery = delivery_file_for(tmp_path, peer.url, retry=HOUR_BACKOFF)
        async with running_gateway(tmp_path, workers=True, delivery_file=delivery) as gw:
            ticket_id, delivery_id = await _retrying(gw, "KL-RETRY-2")
            dead_letters = await gw.post("/api/v1/deliveries/replay", "operator",
                                         {"filter": {"destination": "national"}, "dry_run": True})
            assert dead_letters.json()["delivery_ids"] == []  # a filter takes dead letters unless told otherwise
            peer.accept = True
            now = await gw.post("/api/v1/deliveries/replay", "operator",
                                {"filter": {"state": "retrying", "destination": "national"}})
            assert now.json()["delivery_ids"] == [delivery_id]

            async def delivered() -> bool:
                return (await _state(gw, ticket_id))[1] == "delivered"

            await eventually(delivered, within=60)


async def test_the_dashboard_offers_retry_now_on_a_retrying_delivery_and_its_lane(tmp_path: Path) -> None:
    with receiver() as peer:
        peer.accept, peer.refuse_status = False, 503
        delivery = delivery_file_for(tmp_path, peer.url, retry=HOUR_BACKOFF)
        async with running_gateway(tmp_path, workers=True, delivery_file=delivery) as gw:
            ticket_id, delivery_id = await _retrying(gw, "KL-RETRY-3")
            await _sign_in(gw, "operator")
            page = await gw.client.get(f"/ops/tickets/{ticket_id}")
            assert f'id="replay-{delivery_id}"' in page.text and "立即重试" in page.text
            board = await gw.client.get("/ops")
            assert 'id="retry-now-national"' in board.text
            peer.accept = True
            done = await gw.client.post("/ops/destinations/national/retry-now", data={"csrf": _csrf(board.text)})
            assert done.headers["location"] == "/ops?msg=retried_now"

            async def delivered() -> bool:
                return (await _state(gw, ticket_id))[1] == "delivered"

            await eventually(delivered, within=60)
            back = f"/ops/tickets/{ticket_id}"
            again = await gw.client.post(f"/ops/deliveries/{delivery_id}/replay",
                                         data={"csrf": _csrf(board.text), "back": back})
            assert again.headers["location"] == f"{back}?msg=not_replayed.delivered"
            told = await gw.client.get(again.headers["location"])
            assert "未重新投递：已投递成功，无需重新投递" in told.text
