"""docs/api.md lists every endpoint of the gateway's OpenAPI document, and nothing the gateway does not serve."""

from __future__ import annotations

import re
from pathlib import Path

from tests.ops.ops_support import OpsGateway

API_DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
ENDPOINT = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/[^`]*)`", re.MULTILINE)


async def test_the_api_page_lists_every_endpoint_the_gateway_serves(sqlite_gw: OpsGateway) -> None:
    document = (await sqlite_gw.get("/openapi.json", role=None)).json()
    served = {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}
    listed = set(ENDPOINT.findall(API_DOC.read_text(encoding="utf-8")))
    assert len(served) > 20
    assert served - listed == set(), "served but not on docs/api.md"
    assert listed - served == set(), "on docs/api.md but not served"
