"""The sender's echo as an alert source on a running gateway: a partner whose callback receiver fails does not hear
its ticket's newest status, and the gateway's own alert monitor (its standard rules) raises `sender_silent`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.wire.webhooks import WebhookSigner, generate_secret
from simulators.receiver import Action, ReceiverThread
from tests.alerts.alerts_support import running_alert_world
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


def test_a_partner_not_hearing_back_is_told_on_the_channels_by_a_served_gateway_and_so_is_its_recovery(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = generate_secret()
    monkeypatch.setenv("HIG_NATIONAL_STATUS_SECRETS", secret)
    with ReceiverThread() as partner:
        partner.set_outage(Action(status=500, body='{"code":500,"msg":"回调处理异常"}'))
        with running_alert_world(tmp_path, adapters_dir=adapters_calling_back_to(tmp_path, partner.url),
                                 echo_behind_after_seconds=1) as world:
            world.lanes.accept = True  # the national platform takes the forward
            ticket_id = world.push("GZ-12345-20261206-E001")
            world.wait("the national forward delivered", lambda: any(
                d["state"] == "delivered" for d in world.get("/api/v1/deliveries", ticket_id=ticket_id,
                                                             destination="national").json()))
            body = json.dumps({"event_id": f"evt-{uuid.uuid4().hex[:16]}", "ticket_id": ticket_id, "sequence": 1,
                               "at": datetime.now(UTC).isoformat(), "status": "ACCEPTED",
                               "org": "凯里市市场监督管理局", "opinion": "予以受理"}, ensure_ascii=False).encode()
            signed = WebhookSigner([secret]).sign(f"msg_{uuid.uuid4().hex}", None, body)
            accepted = world.client.post(f"{world.gateway_url}/api/v1/national/status", content=body,
                                         headers={"Content-Type": "application/json", **signed})
            assert accepted.status_code == 200, accepted.text

            # The gateway's own monitor, on its own schedule, finds the partner not hearing back and tells the robots.
            alert = world.wait("the sender_silent alert", lambda: next(
                (a for a in world.alerts() if a["key"] == "sender_silent:city-12345-rest"), None))
            assert alert["details"] == [ticket_id] and alert["severity"] == "warning"
            world.wait("the 企业微信 robot to hear of it", lambda: any(
                "来源系统未收到回音" in m["markdown"]["content"] for m in world.robots.wecom))
            assert world.robots.refused == []

            partner.set_outage(None)  # the partner's receiver is fixed: the callback goes through
            world.wait("the alert to resolve", lambda: not any(
                a["key"] == "sender_silent:city-12345-rest" for a in world.alerts()))
            world.wait("the resolution on the webhook", lambda: any(
                c["key"] == "sender_silent:city-12345-rest" and c["change"] == "resolved"
                for hook in world.robots.webhook for c in hook["data"]["changes"]))
