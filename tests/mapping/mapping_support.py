"""Helpers for mapping tests: compile a small spec written inline, as an integrator would write one."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from mapping.spec import MappingSpec

HEADER = """\
spec_version: 1
adapter_id: demo-rest
source_system: demo-partner
timezone: "+08:00"
"""

# The least a ticket needs, so a test can look at one field at a time.
MINIMAL_FIELDS = """\
  source.source_ticket_no: ticket_no
  source.source_received_at: {path: at, transforms: [datetime]}
  registration.registered_at: {path: at, transforms: [datetime]}
  registration.content: {path: text, transforms: [fold]}
  classification.business_type: {const: "01"}
  classification.channel: {const: "09"}
"""

SpecFactory = Callable[..., MappingSpec]


def write_spec(folder: Path, body: str, crosswalks: dict[str, str] | None = None, name: str = "demo-rest") -> Path:
    """Write `<folder>/<name>.yaml` (and crosswalk files under crosswalks/demo-partner/) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    for file, text in (crosswalks or {}).items():
        target = folder / "crosswalks" / "demo-partner" / file
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text), encoding="utf-8")
    path = folder / f"{name}.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def payload(**fields: object) -> dict[str, object]:
    """A minimal partner payload plus `fields`."""
    return {"ticket_no": "DEMO-0001", "at": "2024-03-15 10:20:00", "text": "咨询个体工商户登记办理流程。", **fields}
