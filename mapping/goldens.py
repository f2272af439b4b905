"""Fixture tickets and their golden expectations: reading them, comparing a result, writing a new golden.

A fixture is `mapping/fixtures/<adapter_id>/NN-name.<kind>` in the partner's own shape:

- `NN-name.json`      the payload as UTF-8 JSON (for a SOAP partner: the dict its <order> becomes);
- `NN-name.gbk.json`  the raw body of a JSON partner sending GBK (decoded with charset=GBK);
- `NN-name.xml`       a raw XML body, in the encoding its declaration names; the spec's `xml_record`
                      says which element holds the ticket.

Its golden, beside it, is one of:

- `NN-name.expected.json`  the canonical ticket as JSON, without the random ticket_id and without the fields
                           left at their contract default (urgency 4, status RECEIVED, empty lists …), so a
                           field the contract gains later does not rewrite every golden;
- `NN-name.errors.json`    the errors, as a list of {field, rule, source_path};
- `NN-name.returned.json`  the return to sender, {reason_code, reason};
- `NN-name.notice.json`    a follow-up of a known ticket (补充材料, 催办, 撤诉): the notice, defaults left out;

and, when a mapped ticket carries warnings, `NN-name.warnings.json` lists them as {field, rule, source_path}.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.errors import FieldError
from mapping.engine import Mapped, MappingResult, Noticed, Rejected, Returned, apply
from mapping.loading import FIXTURES_DIR
from mapping.payload import decode_body, xml_records
from mapping.spec import MappingSpec

GOLDEN_SUFFIXES = {"ok": ".expected.json", "errors": ".errors.json", "returned": ".returned.json",
                   "notice": ".notice.json"}
WARNINGS_SUFFIX = ".warnings.json"
_ALL_GOLDEN = (*GOLDEN_SUFFIXES.values(), WARNINGS_SUFFIX)
CONTENT_TYPES = {".gbk.json": "application/json; charset=GBK", ".json": "application/json", ".xml": "text/xml"}


@dataclass(frozen=True)
class Fixture:
    """One partner payload on disk and where its goldens live."""

    path: Path

    @property
    def stem(self) -> str:
        return self.path.name.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.path.name

    def golden(self, suffix: str) -> Path:
        return self.path.with_name(self.stem + suffix)


def fixtures_of(adapter_id: str, directory: Path = FIXTURES_DIR) -> list[Fixture]:
    """The fixture payloads of one adapter, in name order (goldens are not fixtures)."""
    folder = directory / adapter_id
    if not folder.is_dir():
        return []
    return [
        Fixture(path)
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name.endswith(tuple(CONTENT_TYPES)) and not path.name.endswith(_ALL_GOLDEN)
    ]


def read_payload(path: Path, spec: MappingSpec, content_type: str | None = None) -> Any:
    """A payload file as the adapter would hand it to `apply`; the Content-Type follows the file name
    (see CONTENT_TYPES) unless given. An XML body yields its one `xml_record` element."""
    body = path.read_bytes()
    if content_type is None:
        suffix = next((s for s in CONTENT_TYPES if path.name.endswith(s)), ".json")
        content_type = CONTENT_TYPES[suffix]
    if "xml" in content_type.lower():
        records = xml_records(body, content_type, spec.xml_record or "")
        if len(records) != 1:
            raise ValueError(f"expected one <{spec.xml_record}> element (the spec's xml_record), found {len(records)}")
        return records[0]
    return json.loads(decode_body(body, content_type))


def _brief(errors: tuple[FieldError, ...]) -> list[dict[str, Any]]:
    return [{"field": e.field, "rule": e.rule, "source_path": e.source_path} for e in errors]


def golden_of(result: MappingResult) -> tuple[str, Any, list[dict[str, Any]]]:
    """(kind, golden data, warnings) for a result, in the form the golden files keep."""
    if isinstance(result, Mapped):
        ticket = result.ticket.model_dump(mode="json", exclude_defaults=True, exclude={"ticket_id"})
        return "ok", ticket, _brief(result.warnings)
    if isinstance(result, Rejected):
        return "errors", _brief(result.errors), []
    if isinstance(result, Noticed):
        return "notice", result.notice.model_dump(mode="json", exclude_defaults=True), _brief(result.warnings)
    assert isinstance(result, Returned)
    return "returned", {"reason_code": result.reason_code.value, "reason": result.reason}, []


def canonical_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


@dataclass(frozen=True)
class FixtureCheck:
    """How one fixture fared against its goldens; `problems` is empty when it matches."""

    fixture: Fixture
    kind: str
    problems: tuple[str, ...]


def check_fixture(spec: MappingSpec, fixture: Fixture) -> FixtureCheck:
    """Map a fixture and compare it with its golden files."""
    try:
        payload = read_payload(fixture.path, spec)
    except (OSError, ValueError) as err:
        return FixtureCheck(fixture, "unreadable", (f"cannot read the fixture: {err}",))
    kind, data, warnings = golden_of(apply(spec, payload))
    problems: list[str] = []
    present = [k for k, suffix in GOLDEN_SUFFIXES.items() if fixture.golden(suffix).is_file()]
    if len(present) != 1:
        found = ", ".join(fixture.stem + GOLDEN_SUFFIXES[k] for k in present) or "none"
        problems.append(f"needs exactly one golden (expected/errors/returned); found {found}")
    elif present[0] != kind:
        problems.append(f"golden says {present[0]}, the mapping gives {kind}: {_short(data)}")
    else:
        expected = json.loads(fixture.golden(GOLDEN_SUFFIXES[kind]).read_text(encoding="utf-8"))
        if expected != data:
            problems.extend(_differences(expected, data))
    warnings_file = fixture.golden(WARNINGS_SUFFIX)
    expected_warnings = json.loads(warnings_file.read_text(encoding="utf-8")) if warnings_file.is_file() else []
    if expected_warnings != warnings:
        problems.append(f"warnings differ: golden {_short(expected_warnings)}, mapping {_short(warnings)}")
    return FixtureCheck(fixture, kind, tuple(problems))


def write_golden(spec: MappingSpec, fixture: Fixture) -> list[Path]:
    """Write (or replace) a fixture's goldens from what the mapping gives now; review them before committing."""
    kind, data, warnings = golden_of(apply(spec, read_payload(fixture.path, spec)))
    for suffix in _ALL_GOLDEN:
        fixture.golden(suffix).unlink(missing_ok=True)
    written = [fixture.golden(GOLDEN_SUFFIXES[kind])]
    written[0].write_text(canonical_json(data), encoding="utf-8")
    if warnings:
        written.append(fixture.golden(WARNINGS_SUFFIX))
        written[1].write_text(canonical_json(warnings), encoding="utf-8")
    return written


def _short(data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False)
    return text if len(text) <= 300 else text[:300] + "…"


def _differences(expected: Any, actual: Any, at: str = "") -> list[str]:
    """Field-by-field differences, so a failing golden says which field changed."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        found = []
        for key in sorted(set(expected) | set(actual), key=str):
            where = f"{at}.{key}" if at else str(key)
            if key not in actual:
                found.append(f"{where}: missing (golden has {_short(expected[key])})")
            elif key not in expected:
                found.append(f"{where}: unexpected {_short(actual[key])}")
            else:
                found.extend(_differences(expected[key], actual[key], where))
        return found
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        found = []
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            found.extend(_differences(left, right, f"{at}[{index}]"))
        return found
    if expected != actual:
        return [f"{at or '(whole)'}: golden {_short(expected)}, mapping {_short(actual)}"]
    return []
