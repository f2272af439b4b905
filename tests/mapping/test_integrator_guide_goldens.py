"""docs/integrators.md section 2 as an integrator follows it, with `python main.py map` in a subprocess: copy the city's
spec and crosswalks for 黔南州12345, rename the crosswalks, save a fixture's golden with `--save-golden`, and let
`map --check` hold the spec to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mapping.loading import FIXTURES_DIR, SPECS_DIR

REPO = Path(__file__).resolve().parents[2]
QIANNAN = "qiannan-12345-rest"


def _map(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "main.py", "map", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def _follow_the_guide(tmp: Path) -> tuple[Path, Path, Path]:
    """The spec and crosswalks copied and renamed as the guide says; 黔南 calls a complaint 12, not 02. Returns the
    specs folder, the fixtures folder and the one fixture."""
    specs = tmp / "specs"
    crosswalks = specs / "crosswalks" / "qiannan-12345"
    spec = (SPECS_DIR / "city-12345-rest.yaml").read_text(encoding="utf-8")
    spec = spec.replace("adapter_id: city-12345-rest", f"adapter_id: {QIANNAN}")
    spec = spec.replace("source_system: city-12345", "source_system: qiannan-12345")
    spec = spec.replace("lookup: city12345_", "lookup: qiannan12345_")
    crosswalks.mkdir(parents=True)
    (specs / f"{QIANNAN}.yaml").write_text(spec, encoding="utf-8")
    for source in sorted((SPECS_DIR / "crosswalks" / "city-12345").glob("*.yaml")):
        text = source.read_text(encoding="utf-8")
        text = text.replace("crosswalk: city12345_", "crosswalk: qiannan12345_")
        text = text.replace("partner: city-12345", "partner: qiannan-12345")
        if source.name == "appeal-type.yaml":
            text = text.replace('{partner_code: "02", partner_label: 投诉', '{partner_code: "12", partner_label: 投诉')
        (crosswalks / source.name).write_text(text, encoding="utf-8")
    fixtures = tmp / "fixtures"
    (fixtures / QIANNAN).mkdir(parents=True)
    payload = json.loads((FIXTURES_DIR / "city-12345-rest" / "01-food-complaint.json").read_text(encoding="utf-8"))
    payload.update(appealTypeCode="12", hotlineNo="QN12345-2026-120700001")
    fixture = fixtures / QIANNAN / "01-food-complaint.json"
    fixture.write_text(json.dumps(payload, ensure_ascii=False, indent=2), encoding="utf-8")
    return specs, fixtures, fixture


def test_a_golden_saved_with_the_renamed_crosswalks_is_what_map_check_holds_the_spec_to(tmp_path: Path) -> None:
    specs, fixtures, fixture = _follow_the_guide(tmp_path)
    golden = fixture.with_name("01-food-complaint.expected.json")

    saved = _map("--adapter", QIANNAN, "--specs", str(specs), "--save-golden", str(fixture))
    assert saved.returncode == 0, saved.stderr
    assert f"wrote {golden}" in saved.stdout.splitlines()
    ticket = json.loads(golden.read_text(encoding="utf-8"))
    assert ticket["classification"]["business_type"] == "02"  # 黔南's 12 through the renamed crosswalk: 投诉
    assert (ticket["source"]["adapter_id"], ticket["source"]["source_system"]) == (QIANNAN, "qiannan-12345")
    assert ticket["source"]["source_ticket_no"] == "QN12345-2026-120700001"

    checked = _map("--check", "--specs", str(specs), "--fixtures", str(fixtures))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"ok   {QIANNAN}: 1/1 fixtures match (1 mapped)" in checked.stdout

    # A later change to a crosswalk changes what the partner's ticket becomes: map --check says so until saved again.
    appeal = specs / "crosswalks" / "qiannan-12345" / "appeal-type.yaml"
    complaint = '{partner_code: "12", partner_label: 投诉, code: '
    text = appeal.read_text(encoding="utf-8")
    appeal.write_text(text.replace(complaint + '"02"}', complaint + '"03"}'), encoding="utf-8")
    changed = _map("--check", "--specs", str(specs), "--fixtures", str(fixtures))
    assert changed.returncode == 1
    assert f"FAIL {QIANNAN}: 0/1 fixtures match" in changed.stdout and "business_type" in changed.stdout


def test_a_crosswalk_renamed_in_its_file_but_not_in_the_specs_lookup_is_named_by_file_line_and_key(
        tmp_path: Path) -> None:
    specs, fixtures, _ = _follow_the_guide(tmp_path)
    spec = specs / f"{QIANNAN}.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("lookup: qiannan12345_appeal_type", "lookup: city12345_appeal_type"), encoding="utf-8")
    line = next(n for n, row in enumerate(text.splitlines(), 1) if "lookup: qiannan12345_appeal_type" in row)

    checked = _map("--check", "--specs", str(specs), "--fixtures", str(fixtures))
    assert checked.returncode == 2
    assert f"{spec}:{line}: fields.classification.business_type.transforms[0]" in checked.stderr
    assert "unknown crosswalk 'city12345_appeal_type'" in checked.stderr
