"""The sender's echo (事事有回音) through a live gateway: a partner whose callback receiver fails shows up on the echo
panel (dashboard, ops API, metric) with the failing callback's last error, and drops off once the receiver recovers."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from adapters.wire.webhooks import WebhookSigner, generate_secret
from gateway.ops.deps import SESSION_COOKIE
from simulators.receiver import Action, Receiver, ReceiverThread
from tests.ops.ops_support import (
    CONFIG,
    TOKENS,
    OpsGateway,
    city_complaint,
    delivery_file_for,
    receiver,
    running_gateway,
)
from tests.ops.test_ops_metrics import sample

T = TypeVar("T")
CITY = "city-12345-rest"


async def eventually(what: str, check: Callable[[], Awaitable[T | None]], within: float = 30.0) -> T:
    """Wait on an event (polled): the first answer of `check` that is not None; fail naming `what`."""
    try:
        async with asyncio.timeout(within):
            while True:
                found = await check()
                if found is not None:
                    return found
                await asyncio.sleep(0.05)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


def adapters_calling_back_to(tmp: Path, url: str) -> Path:
    """config/adapters with the city 12345 adapter's status callbacks sent to `url`, retried every few tenths."""
    folder = tmp / "adapters"
    shutil.copytree(CONFIG / "adapters", folder)
    path = folder / f"{CITY}.yaml"
    adapter = yaml.safe_load(path.read_text(encoding="utf-8"))
    adapter["callback"]["url"] = f"{url}/callbacks"
    adapter["callback"]["retry"] = {"backoff": "exponential", "initial_delay": "0.1s", "max_delay": "0.3s",
                                    "jitter": "equal", "max_attempts": 1000, "max_age": "1h"}
    adapter["callback"]["timeout"] = {"connect": "2s", "total": "5s"}
    path.write_text(yaml.safe_dump(adapter, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return folder


async def signed_status(gw: OpsGateway, secret: str, ticket_id: str, sequence: int, status: str) -> httpx.Response:
    """The national platform's status event, signed as it signs them (Standard Webhooks)."""
    body = json.dumps({"event_id": f"evt-{uuid.uuid4().hex[:16]}", "ticket_id": ticket_id, "sequence": sequence,
                       "at": datetime.now(UTC).isoformat(), "status": status, "org": "凯里市市场监督管理局",
                       "opinion": "予以受理"}, ensure_ascii=False).encode("utf-8")
    headers = {"Content-Type": "application/json", **WebhookSigner([secret]).sign(f"msg_{uuid.uuid4().hex}", None,
                                                                                   body)}
    return await gw.client.post("/api/v1/national/status", content=body, headers=headers)


async def behind_row(gw: OpsGateway, ticket_id: str) -> dict[str, Any] | None:
    response = await gw.get("/api/v1/echo/behind")
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return next((r for r in rows if r["ticket_id"] == ticket_id), None)


async def echo_of(gw: OpsGateway, ticket_id: str) -> dict[str, Any] | None:
    response = await gw.get(f"/api/v1/tickets/{ticket_id}")
    assert response.status_code == 200, response.text
    echo: dict[str, Any] | None = response.json()["echo"]
    return echo


async def metric(gw: OpsGateway) -> float | None:
    return sample((await gw.client.get("/metrics")).text, "hig_echo_behind_tickets")


async def page(gw: OpsGateway, path: str) -> str:
    gw.client.cookies.set(SESSION_COOKIE, TOKENS["viewer"])  # signed in, as the browser is after /ops/login
    response = await gw.client.get(path)
    assert response.status_code == 200, response.text
    return response.text


@pytest.fixture
def partner() -> Any:
    with ReceiverThread() as rx:
        yield rx


async def test_a_failing_partner_receiver_is_on_the_echo_panel_until_it_recovers(
        tmp_path: Path, store_kind: str, partner: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_secret()
    monkeypatch.setenv("HIG_NATIONAL_STATUS_SECRETS", secret)
    partner.set_outage(Action(status=500, body='{"code":500,"msg":"回调处理异常"}'))
    with receiver() as national:
        async with running_gateway(tmp_path, store_kind=store_kind, workers=True,
                                   delivery_file=delivery_file_for(tmp_path, national.url),
                                   adapters_dir=adapters_calling_back_to(tmp_path, partner.url),
                                   echo_behind_after_seconds=1) as gw:
            ticket_id = (await gw.push(city_complaint("KL-ECHO-0001"))).ticket_id
            assert ticket_id is not None
            assert await echo_of(gw, ticket_id) is None  # no status yet: nothing for the partner to hear

            accepted = await signed_status(gw, secret, ticket_id, 1, "ACCEPTED")
            assert accepted.status_code == 200, accepted.text

            # The callback fails at the partner's receiver; after a second behind, the ticket is on the panel.
            row = await eventually("the ticket on the echo panel", lambda: behind_row(gw, ticket_id))
            assert (row["source_ticket_no"], row["adapter_id"], row["status"]) == ("KL-ECHO-0001", CITY, "ACCEPTED")
            echo = row["echo"]
            assert (echo["latest_status"], echo["heard_status"], echo["overdue"]) == ("ACCEPTED", None, True)
            assert echo["destination"] == f"callback:{CITY}" and echo["behind_since"] is not None
            waiting = await eventually("a failed attempt on record", lambda: _failed(gw, ticket_id))
            assert (waiting["last_status_code"], waiting["state"]) == (500, "retrying")
            assert partner.stats().answered.get("500", 0) >= 1  # the partner's receiver really refused it
            assert await metric(gw) == 1

            detail_echo = await echo_of(gw, ticket_id)
            assert detail_echo is not None and detail_echo["heard_status"] is None and detail_echo["overdue"]
            board = await page(gw, "/ops")
            assert "来源未获回音" in board and f'id="behind-{ticket_id}"' in board and "KL-ECHO-0001" in board
            ticket_page = await page(gw, f"/ops/tickets/{ticket_id}")
            assert 'data-state="behind"' in ticket_page and "未获回音" in ticket_page

            # The receiver recovers: the retried callback is delivered and the ticket leaves the panel.
            partner.set_outage(None)
            await eventually("the ticket off the echo panel",
                             lambda: _absent(behind_row(gw, ticket_id)))
            heard = await echo_of(gw, ticket_id)
            assert heard is not None
            assert (heard["heard_status"], heard["behind_since"], heard["overdue"]) == ("ACCEPTED", None, False)
            assert await metric(gw) == 0
            assert partner.stats().answered.get("200", 0) == 1
            board = await page(gw, "/ops")
            assert f'id="behind-{ticket_id}"' not in board and "各来源系统均已收到最新状态" in board
            assert 'data-state="heard"' in await page(gw, f"/ops/tickets/{ticket_id}")


async def _failed(gw: OpsGateway, ticket_id: str) -> dict[str, Any] | None:
    row = await behind_row(gw, ticket_id)
    waiting = row["echo"]["waiting"] if row else None
    # Between attempts (the next one comes 0.1-0.3 s later and is then in flight with the last code kept).
    return waiting if waiting and waiting["last_status_code"] is not None and waiting["state"] == "retrying" else None


async def _absent(found: Awaitable[object | None]) -> bool | None:
    return True if await found is None else None
