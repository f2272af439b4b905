"""Alerts through a live gateway: dead letters fire one alert with a count, sent to a Standard Webhooks receiver,
a 企业微信 robot, a signed 钉钉 robot and an SMTP server; the replay resolves it and the resolution is sent too. Mail
also goes to a server that takes it only over STARTTLS (its certificate self-signed) from a logged-in user."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.alerts.alerts_support import (
    SMTP_PASSWORD,
    SMTP_USER,
    AlertWorld,
    MailLogin,
    alert_receivers,
    running_alert_world,
)


def _dead(world: AlertWorld, n: int) -> bool:
    response = world.get("/api/v1/deliveries", state="dead", destination="national")
    return len(response.json()) >= n


def _messages(world: AlertWorld) -> dict[str, int]:
    r = world.robots
    return {"webhook": len(r.webhook), "wecom": len(r.wecom), "dingtalk": len(r.dingtalk),
            "email": len(world.mailbox.messages)}


@pytest.mark.parametrize("store_kind", ["sqlite", "redis"])
def test_an_outage_is_one_alert_with_a_count_on_every_channel_and_its_resolution_follows(tmp_path: Path,
                                                                                         store_kind: str) -> None:
    with running_alert_world(tmp_path, store_kind=store_kind) as world:
        for i in range(3):
            world.push(f"GZ-12345-20261206-A{i:03d}")
        world.wait("three forwards dead-lettered", lambda: _dead(world, 3))
        alert = world.wait("the dead-letter alert at count 3", lambda: next(
            (a for a in world.alerts() if a["key"] == "dead_letters:national" and a["count"] == 3), None))
        assert alert["severity"] == "critical" and alert["state"] == "firing"
        world.wait("every channel to hear of it", lambda: all(_messages(world).values()))

        # Three dead letters are one alert: each channel got one message about it, whatever the count was then.
        assert [a["key"] for a in world.alerts()] == ["dead_letters:national"]
        [hook] = world.robots.webhook
        assert hook["type"] == "gateway.alerts"
        [change] = [c for c in hook["data"]["changes"] if c["key"] == "dead_letters:national"]
        assert change["change"] == "fired" and change["rule"] == "dead_letters" and change["count"] >= 1
        [wecom] = world.robots.wecom
        assert "通道 national 有" in wecom["markdown"]["content"] and "死信" in wecom["markdown"]["content"]
        [ding] = world.robots.dingtalk
        assert "告警" in ding["markdown"]["title"] and "通道 national" in ding["markdown"]["text"]
        [(sender, recipients, mail)] = world.mailbox.messages
        assert sender == "hig-alerts@example.gov.cn"
        assert sorted(recipients) == ["duty@example.gov.cn", "lead@example.gov.cn"]
        assert "[12315网关告警]" in str(mail["Subject"]) and "1 条告警" in str(mail["Subject"])
        body = mail.get_content()
        assert "通道 national 有" in body and "死信" in body
        assert world.robots.refused == []  # the key, the 加签 signature and the webhook signature all checked

        # Visible: metrics and the dashboard (in Chinese).
        metrics = world.client.get(f"{world.gateway_url}/metrics").text
        assert re.search(r'hig_alerts_firing\{rule="dead_letters",severity="critical"\} 1\.0', metrics)
        assert re.search(r'hig_alert_messages_total\{channel="ops-wecom"\} 1\.0', metrics)
        page = world.get("/ops").text
        assert "当前告警" in page and "通道 national 有 3 条死信" in page and "严重" in page

        # The partner is fixed and the dead letters replayed: the alert resolves, and every channel hears so.
        world.lanes.accept = True
        replay = world.post("/api/v1/deliveries/replay", {"filter": {"destination": "national"}})
        assert replay.status_code == 200, replay.text
        world.wait("the alert to resolve", lambda: world.alerts() == [])
        world.wait("every channel to hear of the resolution", lambda: all(n == 2 for n in _messages(world).values()))
        resolved = next(a for a in world.alerts("all") if a["alert_id"] == alert["alert_id"])
        assert resolved["state"] == "resolved" and resolved["peak"] == 3 and resolved["owed"] == []
        assert world.robots.webhook[1]["data"]["changes"][0]["change"] == "resolved"
        assert "已恢复" in world.robots.wecom[1]["markdown"]["content"]
        assert "已恢复" in world.robots.dingtalk[1]["markdown"]["text"]
        assert "1 条已恢复" in str(world.mailbox.messages[1][2]["Subject"])
        assert "hig_alerts_firing{" not in world.client.get(f"{world.gateway_url}/metrics").text.replace(
            "# HELP hig_alerts_firing", "").replace("# TYPE hig_alerts_firing", "")


def test_a_channel_over_its_rate_limit_is_owed_the_change_not_sent_it(tmp_path: Path) -> None:
    with running_alert_world(tmp_path, mail_limit=1) as world:
        world.push("GZ-12345-20261206-B001")
        world.wait("the forward dead-lettered", lambda: _dead(world, 1))
        world.wait("the first mail", lambda: len(world.mailbox.messages) == 1)
        world.lanes.accept = True
        world.post("/api/v1/deliveries/replay", {"filter": {"destination": "national"}})
        world.wait("the resolution on the robots", lambda: len(world.robots.wecom) == 2)

        resolved: dict[str, Any] = world.wait("the resolved alert still owed to the mail channel", lambda: next(
            (a for a in world.alerts("all") if a["state"] == "resolved" and a["owed"] == ["ops-mail"]), None))
        assert resolved["key"] == "dead_letters:national"
        assert len(world.mailbox.messages) == 1  # one mail an hour: the resolution waits for the next allowed


def test_a_robot_that_refuses_is_retried_on_the_alert_lane_until_it_takes_the_message(tmp_path: Path) -> None:
    with running_alert_world(tmp_path) as world:
        world.robots.wecom_answer = 45009  # 企业微信: api freq out of limit
        world.push("GZ-12345-20261206-C001")
        world.wait("the robot to refuse", lambda: "wecom: busy" in world.robots.refused)
        attempts = world.get("/api/v1/deliveries", destination="alert:ops-wecom").json()
        assert attempts and attempts[0]["state"] in ("retrying", "in_flight", "pending")
        assert attempts[0]["last_error_class"] == "robot_errcode_45009"
        world.robots.wecom_answer = 0
        world.wait("the message once the robot takes it", lambda: len(world.robots.wecom) == 1)
        assert "死信" in world.robots.wecom[0]["markdown"]["content"]


def test_mail_goes_over_starttls_to_a_self_signed_server_logged_in_with_the_password_of_the_environment(
        tmp_path: Path) -> None:
    login = MailLogin.made_in(tmp_path / "smtp-tls")  # the server's own certificate, trusted by the channel's ca_file
    with alert_receivers(login) as receivers, running_alert_world(tmp_path, receivers=receivers) as world:
        world.push("GZ-12345-20261206-D001")
        world.wait("the forward dead-lettered", lambda: _dead(world, 1))
        world.wait("the mail", lambda: len(world.mailbox.messages) == 1)
        [(sender, recipients, mail)] = world.mailbox.messages
        assert sender == "hig-alerts@example.gov.cn" and "duty@example.gov.cn" in recipients
        assert "死信" in mail.get_content()
    # Mail was taken only after STARTTLS and a login (the server requires both), with the user of alerts.yaml and
    # the password of TEST_ALERT_SMTP_PASSWORD, which is in the environment and not in the file.
    assert [(user, password) for _, user, password in login.logins] == [(SMTP_USER, SMTP_PASSWORD)]
    assert login.logins[0][0] in ("LOGIN", "PLAIN")
    alerts_yaml = (tmp_path / "alerts.yaml").read_text(encoding="utf-8")
    assert "password_env: TEST_ALERT_SMTP_PASSWORD" in alerts_yaml and SMTP_PASSWORD not in alerts_yaml
