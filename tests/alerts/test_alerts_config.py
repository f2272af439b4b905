"""The alerts file is checked when the gateway's configuration is: each problem names file, line and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.alerts import AlertsConfigError, load_alerts_config
from gateway.alerts.channels import dingtalk_sign
from gateway.alerts.config import EmailChannel
from tests.alerts.alerts_support import MailLogin
from tests.hig_command import run_hig
from tests.ops.ops_support import running_gateway

ROOT = Path(__file__).resolve().parents[2]


def _config_with_alerts(tmp: Path, alerts: str) -> Path:
    config = tmp / "config"
    shutil.copytree(ROOT / "config", config)
    (config / "alerts.yaml").write_text(alerts, encoding="utf-8")
    return config / "gateway.yaml"


def test_check_config_names_file_line_and_key_of_a_bad_channel(tmp_path: Path) -> None:
    gateway = _config_with_alerts(tmp_path, (
        "evaluate_every: 30s\n"
        "channels:\n"
        "  - name: ops-wecom\n"
        "    kind: wecom\n"
        "    key_env: HIG_ALERT_WECOM_KEY\n"
        "    min_severity: urgent\n"
        "  - name: ops-mail\n"
        "    kind: email\n"
        "    host: smtp.example.gov.cn\n"
        "    sender: alerts@example.gov.cn\n"
        "    to: [not-an-address]\n"))
    done = run_hig("check-config", str(gateway), env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done.stdout
    alerts = gateway.parent / "alerts.yaml"
    assert f"{alerts}:6: channels[0].min_severity" in done.stderr
    assert f"{alerts}:11: channels[1].to[0]" in done.stderr


def test_a_channel_whose_secret_is_not_in_the_environment_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("channels:\n  - name: ops-ding\n    kind: dingtalk\n    access_token_env: T_DING\n"
                    "    secret_env: T_DING_SECRET\n", encoding="utf-8")

    with pytest.raises(AlertsConfigError) as refused:
        load_alerts_config(path, {"T_DING": "token"})

    assert refused.value.problems == [
        f"{path.resolve()}:5: channels[0].secret_env: environment variable T_DING_SECRET is not set"]


def test_the_demo_configuration_has_alerts_and_no_channels() -> None:
    done = run_hig("check-config")
    assert done.returncode == 0, done.stderr
    assert "0 alert channels" in done.stdout


def test_the_dingtalk_sign_is_the_documented_hmac_of_timestamp_and_secret() -> None:
    # Worked by hand with openssl: printf '1700000000000\nSECabc' | openssl dgst -sha256 -hmac SECabc -binary | base64
    assert dingtalk_sign("SECabc", 1700000000000) == "jcUpW0QmtKduN03n4JqQ0PBosVjqnM8gU7fIIvsDmCM%3D"


async def test_a_changed_alerts_file_is_named_as_needing_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(ROOT / "config", config)
    async with running_gateway(tmp_path, config_dir=config) as gw:
        alerts = config / "alerts.yaml"
        alerts.write_text(alerts.read_text(encoding="utf-8").replace("min_open: 5", "min_open: 3"), encoding="utf-8")
        response = await gw.post("/api/v1/admin/reload", "admin")
        assert response.status_code == 200, response.text
        assert response.json()["restart_required"] == ["alerts"]


def _mail_channel(ca_file: str, security: str = "starttls") -> str:
    return ("channels:\n  - name: ops-mail\n    kind: email\n    host: smtp.example.gov.cn\n    port: 587\n"
            f"    security: {security}\n    sender: alerts@example.gov.cn\n    to: [duty@example.gov.cn]\n"
            f"    ca_file: {ca_file}\n")


def test_a_mail_channels_ca_file_is_read_at_load_relative_to_the_alerts_file(tmp_path: Path) -> None:
    (tmp_path / "certs").mkdir()
    (tmp_path / "certs" / "not-a-cert.pem").write_text("-----BEGIN NOTHING-----\n", encoding="utf-8")
    path = tmp_path / "alerts.yaml"
    for ca_file, saying in (("certs/missing.pem", "No such file"), ("certs/not-a-cert.pem", "")):
        path.write_text(_mail_channel(ca_file), encoding="utf-8")
        with pytest.raises(AlertsConfigError) as refused:
            load_alerts_config(path, {})
        [problem] = refused.value.problems
        assert problem.startswith(f"{path.resolve()}:9: channels[0].ca_file: {tmp_path / ca_file} is not a "
                                  "readable PEM certificate file"), problem
        assert saying in problem


def test_a_mail_channels_ca_file_is_the_certificate_file_beside_the_alerts_file(tmp_path: Path) -> None:
    login = MailLogin.made_in(tmp_path / "certs")
    path = tmp_path / "alerts.yaml"
    path.write_text(_mail_channel("certs/smtp-cert.pem"), encoding="utf-8")
    [channel] = load_alerts_config(path, {}).channels
    assert isinstance(channel, EmailChannel) and channel.ca_file == str(login.cert.resolve())


def test_a_ca_file_without_tls_is_refused(tmp_path: Path) -> None:
    login = MailLogin.made_in(tmp_path / "certs")
    path = tmp_path / "alerts.yaml"
    path.write_text(_mail_channel(str(login.cert), security="none"), encoding="utf-8")
    with pytest.raises(AlertsConfigError) as refused:
        load_alerts_config(path, {})
    [problem] = refused.value.problems
    assert problem.startswith(f"{path.resolve()}:") and "ca_file is for a server spoken to over TLS" in problem
