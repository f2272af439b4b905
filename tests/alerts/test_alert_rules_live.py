"""Each alert rule through a live gateway: breakers opening and closing, pollers failing in a row, tickets overdue
or due soon, quarantine growing; and an alert message outliving a restart of the gateway."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import yaml

from simulators.peer import DEV_CREDENTIALS
from tests.alerts.alerts_support import (
    AlertWorld,
    CuttableProxy,
    alert_receivers,
    flaky_delivery_file,
    running_alert_world,
)
from tests.e2e.e2e_support import free_port
from tests.ops.ops_support import CONFIG, china_time, city_complaint, drop_namespace, due_soon_receipt_day


def _changes(world: AlertWorld) -> list[dict[str, Any]]:
    return [c for hook in world.robots.webhook for c in hook["data"]["changes"]]


def test_a_breaker_that_opens_fires_and_its_closing_resolves(tmp_path: Path) -> None:
    with alert_receivers() as receivers:
        receivers.robots.lane_status = 503
        delivery = flaky_delivery_file(tmp_path, f"{receivers.robots.url}/lanes", breaker={
            "failure_ratio": 0.5, "window": "30s", "min_calls": 3, "cool_down": "1s"})
        with running_alert_world(tmp_path, receivers=receivers, delivery_file=delivery) as world:
            world.push("GZ-12345-20261206-D001")
            alert = world.wait("the breaker alert", lambda: next(
                (a for a in world.alerts() if a["key"] == "breaker_open:national"), None))
            assert "熔断已打开" in alert["summary"] and alert["severity"] == "critical"
            world.wait("the webhook to hear of it", lambda: any(
                c["key"] == "breaker_open:national" and c["change"] == "fired" for c in _changes(world)))

            receivers.robots.lane_status = 200  # the platform is back: the probe goes through, the breaker closes
            world.wait("the breaker alert to resolve", lambda: not any(
                a["key"] == "breaker_open:national" for a in world.alerts()), timeout=90)
            world.wait("the webhook to hear of the resolution", lambda: any(
                c["key"] == "breaker_open:national" and c["change"] == "resolved" for c in _changes(world)))
            text = "\n".join(m["markdown"]["content"] for m in world.robots.wecom)
            assert "熔断已关闭" in text
            fired = [c for c in _changes(world) if c["key"] == "breaker_open:national" and c["change"] == "fired"]
            assert len(fired) == 1  # while it stayed open (and half-open, probing) it was one alert


def _adapters_polling_a_closed_port(tmp: Path) -> Path:
    """The demo's adapters, the two REST pollers pointed at a port nobody listens on, the SOAP one off."""
    target = tmp / "adapters"
    shutil.copytree(CONFIG / "adapters", target)
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("legacy-registration", "credit-supervision"):
        file = target / f"{name}.yaml"
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        data["poll"]["url"] = f"{dead}/api/poll"
        data["poll"]["interval_seconds"] = "0.2s"
        data["poll"]["backoff"] = {"initial": "0.1s", "factor": 1.5, "max": "0.3s"}
        data["poll"]["timeout"] = {"connect": "1s", "total": "1s"}
        if "ack_url" in (data.get("options") or {}):
            data["options"]["ack_url"] = f"{dead}/api/ack"
        file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    province = target / "province-12345-soap.yaml"
    province.write_text(province.read_text(encoding="utf-8") + "\nenabled: false\n", encoding="utf-8")
    return target


def test_pollers_failing_in_a_row_fire_one_alert_each(tmp_path: Path) -> None:
    rules = {"ticket_overdue": {"enabled": False}, "ticket_due_soon": {"enabled": False},
             "poller_failing": {"consecutive_failures": 3}}
    with running_alert_world(tmp_path, adapters_dir=_adapters_polling_a_closed_port(tmp_path), pollers=True,
                             rules=rules) as world:
        found = world.wait("both pollers' alerts", lambda: (lambda keys: keys if {
            "poller_failing:legacy-registration", "poller_failing:credit-supervision"} <= keys else None)(
            {a["key"] for a in world.alerts()}))
        assert "poller_failing:province-12345-soap" not in found
        polled = next(a for a in world.alerts() if a["key"] == "poller_failing:legacy-registration")
        assert polled["count"] >= 3 and "拉取工单连续失败" in polled["summary"]
        assert polled["details"]  # the last error, for the operator
        world.wait("the dingtalk robot to hear of both", lambda: sum(
            "拉取工单连续失败" in m["markdown"]["text"] for m in world.robots.dingtalk) >= 1 and all(
            any(a in m["markdown"]["text"] for m in world.robots.dingtalk)
            for a in ("legacy-registration", "credit-supervision")))


def test_overdue_and_due_soon_tickets_are_two_alerts_naming_their_numbers(tmp_path: Path) -> None:
    rules = {"ticket_overdue": {"min_count": 2}, "ticket_due_soon": {"min_count": 1},
             "dead_letters": {"enabled": False}}
    with running_alert_world(tmp_path, rules=rules) as world:
        world.push("GZ-OVERDUE-0001")  # the fixture was received 2024-03-15: long overdue
        world.wait("one overdue ticket to be below the threshold of two", lambda: world.runtime.alerts is not None
                   and world.runtime.alerts.rounds > 8)
        assert not any(a["rule"] == "ticket_overdue" for a in world.alerts())
        world.push("GZ-OVERDUE-0002")
        day = due_soon_receipt_day(world.runtime)
        payload = city_complaint("GZ-DUESOON-0001", createTime=china_time(day))
        response = world.client.post(f"{world.gateway_url}/api/v1/inbound/city-12345-rest/tickets",
                                     content=json.dumps(payload, ensure_ascii=False).encode(),
                                     headers={"Content-Type": "application/json",
                                              "X-Api-Key": DEV_CREDENTIALS["PARTNER_CITY12345_API_KEY"]})
        assert response.status_code in (200, 201, 202), response.text
        alerts = world.wait("both deadline alerts", lambda: (lambda found: found if len(found) == 2 else None)(
            {a["rule"]: a for a in world.alerts() if a["rule"] in ("ticket_overdue", "ticket_due_soon")}))
        assert alerts["ticket_overdue"]["count"] == 2 and alerts["ticket_overdue"]["severity"] == "critical"
        assert set(alerts["ticket_overdue"]["details"]) == {"GZ-OVERDUE-0001", "GZ-OVERDUE-0002"}
        assert alerts["ticket_due_soon"]["count"] == 1 and alerts["ticket_due_soon"]["severity"] == "warning"
        assert alerts["ticket_due_soon"]["details"] == ["GZ-DUESOON-0001"]
        world.wait("a mail naming the overdue tickets", lambda: any(
            "GZ-OVERDUE-0002" in m.get_content() and "已超过法定时限" in m.get_content()
            for _, _, m in world.mailbox.messages))


def test_a_growing_quarantine_fires_with_the_adapter_and_its_count(tmp_path: Path) -> None:
    rules = {"ticket_overdue": {"enabled": False}, "ticket_due_soon": {"enabled": False},
             "quarantine_growing": {"min_open": 2}}
    with running_alert_world(tmp_path, rules=rules) as world:
        for i in range(2):
            payload = city_complaint(f"GZ-BAD-{i}", createTime="昨天上午")  # no time a mapping can read
            response = world.client.post(f"{world.gateway_url}/api/v1/inbound/city-12345-rest/tickets",
                                         content=json.dumps(payload, ensure_ascii=False).encode(),
                                         headers={"Content-Type": "application/json",
                                                  "X-Api-Key": DEV_CREDENTIALS["PARTNER_CITY12345_API_KEY"]})
            assert response.status_code == 422, response.text
        alert = world.wait("the quarantine alert", lambda: next(
            (a for a in world.alerts() if a["key"] == "quarantine_growing:city-12345-rest"), None))
        assert alert["count"] == 2 and "2 件报文未能映射" in alert["summary"]


def test_an_alert_message_outlives_a_restart_of_the_gateway(tmp_path: Path) -> None:
    with alert_receivers() as receivers:
        receivers.robots.wecom_answer = 45009  # the robot refuses for now: the message waits on its lane
        with running_alert_world(tmp_path, receivers=receivers) as world:
            world.push("GZ-12345-20261206-R001")
            world.wait("the robot to refuse the alert", lambda: "wecom: busy" in receivers.robots.refused)
            [first] = world.alerts()
        assert receivers.robots.wecom == []
        receivers.robots.wecom_answer = 0
        with running_alert_world(tmp_path, receivers=receivers) as world:  # the same data dir: the same store
            world.wait("the message sent by the restarted gateway", lambda: len(receivers.robots.wecom) == 1)
            assert "死信" in receivers.robots.wecom[0]["markdown"]["content"]
            # The alert was kept: after the restart it is the same alert, not a new one told again.
            assert [a["alert_id"] for a in world.alerts()] == [first["alert_id"]]
            world.wait("a few more rounds", lambda: world.runtime.alerts is not None
                       and world.runtime.alerts.rounds > 5)
            assert len(receivers.robots.wecom) == 1
            assert len([c for c in _changes(world) if c["change"] == "fired"]) == 1


def test_a_store_outage_is_told_once_the_store_is_back(tmp_path: Path) -> None:
    namespace = f"test-alerts-{uuid.uuid4().hex[:12]}"
    proxy = CuttableProxy()
    rules = {"ticket_overdue": {"enabled": False}, "ticket_due_soon": {"enabled": False},
             "store_unreachable": {"failed_checks": 2}}
    try:
        with running_alert_world(tmp_path, store_kind="redis", namespace=namespace, redis_url=proxy.url,
                                 rules=rules) as world:
            monitor = world.runtime.alerts
            assert monitor is not None
            proxy.cut()
            # A check of a cut connection may take up to the monitor's 10 s health timeout: generous waits.
            world.wait("the monitor to find the store unreachable twice", lambda: monitor.outage is not None
                       and monitor.outage.failed_checks >= 2, timeout=120)
            proxy.restore()
            alert = world.wait("the outage alert once the store is back", lambda: next(
                (a for a in world.alerts("all") if a["key"] == "store_unreachable:store"), None), timeout=120)
            assert alert["state"] == "resolved" and alert["count"] >= 2 and alert["severity"] == "critical"
            world.wait("the robots to hear of it", lambda: any(
                "存储曾无法访问" in m["markdown"]["content"] and "存储已恢复访问" in m["markdown"]["content"]
                for m in world.robots.wecom))
            # Each channel is its own lane: the webhook may hear it a moment after the robots.
            world.wait("the webhook to hear it resolved", lambda: any(
                c["key"] == "store_unreachable:store" and c["change"] == "resolved" for c in _changes(world)))
    finally:
        proxy.close()
        asyncio.run(drop_namespace(namespace))


def test_a_lane_whose_oldest_delivery_waits_too_long_fires_and_resolves_once_delivered(tmp_path: Path) -> None:
    rules = {"ticket_overdue": {"enabled": False}, "ticket_due_soon": {"enabled": False},
             "lane_waiting": {"older_than": "1s"}}
    with alert_receivers() as receivers:
        receivers.robots.lane_status = 503  # retried, never given up: the lane only waits
        delivery = flaky_delivery_file(tmp_path, f"{receivers.robots.url}/lanes", breaker={"enabled": False})
        with running_alert_world(tmp_path, receivers=receivers, delivery_file=delivery, rules=rules) as world:
            world.push("GZ-12345-20261206-W001")
            alert = world.wait("the waiting lane's alert", lambda: next(
                (a for a in world.alerts() if a["key"] == "lane_waiting:national"), None))
            assert "通道 national 最早一条未送达的投递已等待" in alert["summary"] and alert["count"] == 1
            assert alert["severity"] == "warning"
            receivers.robots.lane_status = 200
            world.wait("the alert to resolve once the forward is delivered", lambda: not any(
                a["key"] == "lane_waiting:national" for a in world.alerts()))
            world.wait("the resolution on the robot", lambda: any(
                "积压已送达" in m["markdown"]["content"] for m in receivers.robots.wecom))
