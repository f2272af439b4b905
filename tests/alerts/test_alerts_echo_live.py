"""The sender's echo as an alert source on a running gateway: a partner whose callback receiver fails does not hear
its ticket's newest status, and the gateway's own alert monitor (its standard rules) raises `sender_silent`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from adapters.wire.webhooks import generate_secret
from simulators.receiver import Action, ReceiverThread
from tests.ops.ops_support import city_complaint, delivery_file_for, receiver, running_gateway
from tests.ops.test_sender_echo import adapters_calling_back_to, behind_row, eventually, signed_status


async def test_a_partner_not_hearing_back_raises_an_alert_naming_its_ticket(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_secret()
    monkeypatch.setenv("HIG_NATIONAL_STATUS_SECRETS", secret)
    with ReceiverThread() as partner, receiver() as national:
        partner.set_outage(Action(status=500, body='{"code":500,"msg":"回调处理异常"}'))
        async with running_gateway(tmp_path, workers=True, delivery_file=delivery_file_for(tmp_path, national.url),
                                   adapters_dir=adapters_calling_back_to(tmp_path, partner.url),
                                   echo_behind_after_seconds=1) as gw:
            ticket_id = (await gw.push(city_complaint("KL-ALERT-ECHO-1"))).ticket_id
            assert ticket_id is not None
            accepted = await signed_status(gw, secret, ticket_id, 1, "ACCEPTED")
            assert accepted.status_code == 200, accepted.text
            await eventually("the ticket behind on the echo", lambda: behind_row(gw, ticket_id))
            monitor = gw.runtime.alerts
            assert monitor is not None

            async def fired() -> dict[str, Any] | None:
                await monitor.evaluate()  # a round now, as the gateway makes one every evaluate_every
                alerts: list[dict[str, Any]] = (await gw.get("/api/v1/alerts")).json()
                return next((a for a in alerts if a["key"] == "sender_silent:city-12345-rest"), None)

            alert = await eventually("the sender_silent alert", fired)
            assert alert["details"] == [ticket_id] and alert["count"] == 1
            assert "接口 city-12345-rest 有 1 件工单的最新状态" in alert["summary"]
            assert "来源系统未收到回音" in alert["summary"]
