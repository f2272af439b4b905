"""Configuration is one YAML file with environment overrides, and its errors name file, line and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.config import DEFAULT_CONFIG, ConfigError, load_settings


def test_the_demo_configuration_serves_qiandongnan() -> None:
    settings = load_settings()
    assert settings.region.code == "522600"
    assert settings.server.port == 8315
    assert settings.store.kind == "sqlite"
    assert settings.config_dir == DEFAULT_CONFIG.parent


def test_an_environment_variable_overrides_the_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIG_STORE__KIND", "redis")
    monkeypatch.setenv("HIG_SERVER__PORT", "8400")
    settings = load_settings()
    assert (settings.store.kind, settings.server.port) == ("redis", 8400)


def test_a_wrong_value_is_reported_with_file_line_and_key(tmp_path: Path) -> None:
    file = tmp_path / "gateway.yaml"
    file.write_text('region:\n  code: "522600"\n  name: 黔东南\nstore:\n  kind: mysql\n', encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(file)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{file}:5: store.kind:")
    assert "HIG_STORE__KIND" in problem


def test_an_unknown_key_is_reported_by_name(tmp_path: Path) -> None:
    file = tmp_path / "gateway.yaml"
    file.write_text('region:\n  code: "522600"\n  name: 黔东南\nservr:\n  port: 1\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"gateway.yaml:4: servr: Extra inputs are not permitted"):
        load_settings(file)


def test_a_missing_section_is_reported(tmp_path: Path) -> None:
    file = tmp_path / "gateway.yaml"
    file.write_text("server:\n  port: 8315\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"region: Field required"):
        load_settings(file)


def test_broken_yaml_names_the_line(tmp_path: Path) -> None:
    file = tmp_path / "gateway.yaml"
    file.write_text("region:\n  code: [522600\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"gateway.yaml:3: not valid YAML"):
        load_settings(file)
