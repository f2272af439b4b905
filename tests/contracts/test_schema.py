"""The committed JSON Schema is the one the models produce."""

from __future__ import annotations

from contracts.schema_export import SCHEMA_DIR, render_schemas


def test_the_committed_schema_matches_the_models() -> None:
    stale = [
        name
        for name, text in render_schemas().items()
        if not (SCHEMA_DIR / name).is_file() or (SCHEMA_DIR / name).read_text(encoding="utf-8") != text
    ]
    assert not stale, f"stale schema files {stale}: run `python main.py schema export` and commit them"


def test_the_ticket_schema_forbids_unknown_fields_and_limits_content() -> None:
    schema = render_schemas()["ticket.schema.json"]
    assert '"additionalProperties": false' in schema
    assert '"maxLength": 4000' in schema
