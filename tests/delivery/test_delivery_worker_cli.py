"""`python main.py worker`: a bad destinations file stops it at once, naming file, line and key."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import cli


def test_worker_refuses_a_bad_destinations_file(tmp_path: Path) -> None:
    gateway_yaml = tmp_path / "gateway.yaml"
    gateway_yaml.write_text("region: {code: '522600', name: 黔东南苗族侗族自治州}\n", encoding="utf-8")
    destinations = tmp_path / "destinations.yaml"
    destinations.write_text("destinations:\n  - name: national\n    url: http://127.0.0.1:9/\n"
                            "    timeout: {total: 30s}\n    lease: 10s\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["worker", "--config", str(gateway_yaml), "--destinations", str(destinations)])
    assert result.exit_code == 2
    assert f"{destinations}:2: destinations[0]:" in result.output
    assert "must exceed timeout.total" in result.output


def test_worker_reads_the_delivery_file_the_gateway_config_names(tmp_path: Path) -> None:
    gateway_yaml = tmp_path / "gateway.yaml"
    gateway_yaml.write_text("region: {code: '522600', name: 黔东南苗族侗族自治州}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["worker", "--config", str(gateway_yaml)])
    assert result.exit_code == 2
    assert f"{tmp_path / 'delivery.yaml'}: cannot read" in result.output
