"""JSON Schema of the national contract, as committed under contracts/schema/."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from contracts.delivery import AttemptReceipt, DeliveryReceipt
from contracts.status import StatusEvent
from contracts.ticket import Ticket

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"
EXPORTED: dict[str, type[BaseModel]] = {
    "ticket.schema.json": Ticket,
    "status-event.schema.json": StatusEvent,
    "delivery-receipt.schema.json": DeliveryReceipt,
    "attempt-receipt.schema.json": AttemptReceipt,
}


def render_schemas() -> dict[str, str]:
    """Each schema file's name and its exact text."""
    rendered = {}
    for name, model in EXPORTED.items():
        schema = model.model_json_schema(mode="validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"urn:hotline-interop-gateway:contracts:{name}"
        rendered[name] = json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
    return rendered


def export_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
