"""`python main.py map`: one ticket to canonical JSON or its errors; `--check` runs every spec's fixtures."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import cli
from mapping.loading import FIXTURES_DIR, SPECS_DIR

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_a_ticket_is_printed_as_canonical_json_with_its_chinese_text() -> None:
    result = runner.invoke(cli, ["map", "--adapter", "city-12345-rest",
                                 str(FIXTURES_DIR / "city-12345-rest" / "01-food-complaint.json")])
    assert result.exit_code == 0, result.output
    ticket = json.loads(result.stdout)
    assert ticket["complainant"]["name"] == "王小红"
    assert "王小红" in result.stdout  # not \\u escapes
    assert ticket["source"]["adapter_id"] == "city-12345-rest"


def test_a_raw_gbk_body_is_read_by_its_file_name() -> None:
    result = runner.invoke(cli, ["map", "-a", "province-12345-soap",
                                 str(FIXTURES_DIR / "province-12345-soap" / "07-gbk-envelope.xml")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["complainant"]["name"] == "邰秀兰"


def test_errors_are_printed_and_exit_1() -> None:
    result = runner.invoke(cli, ["map", "-a", "legacy-registration",
                                 str(FIXTURES_DIR / "legacy-registration" / "06-bad-id-and-credit-code.json")])
    assert result.exit_code == 1
    errors = json.loads(result.stdout)["errors"]
    assert [(e["field"], e["rule"], e["source_path"]) for e in errors] == [
        ("complainant.id_number", "invalid_resident_id", "tsfxx.zjhm"),
        ("respondent.uscc", "invalid_uscc", "btsfxx.tyshxydm"),
        ("subject.amount", "invalid_money", "sjje"),
    ]


def test_a_return_to_sender_is_printed() -> None:
    result = runner.invoke(cli, ["map", "-a", "emergency-command",
                                 str(FIXTURES_DIR / "emergency-command" / "04-forest-fire-returned.json")])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["returned"]["reason_code"] == "1"


def test_check_reports_each_spec_and_passes_on_the_shipped_fixtures() -> None:
    completed = subprocess.run([sys.executable, "main.py", "map", "--check"], cwd=ROOT, capture_output=True,
                               text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    assert len(lines) == 6
    assert all(line.startswith("ok   ") for line in lines)


def test_check_fails_naming_the_fixture_and_field_that_differ(tmp_path: Path) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURES_DIR / "city-12345-rest", fixtures / "city-12345-rest")
    golden = fixtures / "city-12345-rest" / "01-food-complaint.expected.json"
    expected = json.loads(golden.read_text(encoding="utf-8"))
    expected["complainant"]["name"] = "王小明"
    golden.write_text(json.dumps(expected, ensure_ascii=False), encoding="utf-8")

    result = runner.invoke(cli, ["map", "--check", "-a", "city-12345-rest", "--fixtures", str(fixtures),
                                 "--specs", str(SPECS_DIR)])
    assert result.exit_code == 1
    assert "FAIL city-12345-rest: 12/13 fixtures match" in result.stdout
    assert "01-food-complaint.json:" in result.stdout
    assert 'complainant.name: golden "王小明", mapping "王小红"' in result.stdout


def test_a_broken_spec_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    spec = (SPECS_DIR / "city-12345-rest.yaml").read_text(encoding="utf-8")
    (tmp_path / "city-12345-rest.yaml").write_text(spec.replace("complainant.phone:", "complainant.phones:"),
                                                   encoding="utf-8")
    shutil.copytree(SPECS_DIR / "crosswalks" / "city-12345", tmp_path / "crosswalks" / "city-12345")
    result = runner.invoke(cli, ["map", "--check", "--specs", str(tmp_path)])
    assert result.exit_code == 2
    line = next(n for n, text in enumerate(spec.splitlines(), start=1) if "complainant.phone:" in text)
    assert f"city-12345-rest.yaml:{line}: fields.complainant.phones: unknown target field" in result.output
