"""The pushes of the linking benchmarks (bench/links/intake.py, reused by bench/links/inproc.py) hold the duplicates
they say and no others: one in twenty repeats the consumer and shop of the request three before; no other two share
a complainant mark (phone or ID number) and a shop, over as many requests as a long in-turn run sends (both sides
together, 120,000). Before, the ID number repeated every 21,000 consumers and, with the shop, every 42,000: past
that, most tickets of the side with linking on were duplicates and were linked.

The payloads are made in a process of their own, as the benchmark makes them: its modules set the phone-hash key in
the environment when imported, which later tests' gateways would inherit."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from contracts.identifiers import normalize_resident_id
from tests.ops.ops_support import REPO

REQUESTS = 120_000
DUPLICATE_EVERY = 20  # as the benchmark's docstring and docs/benchmarks.md say

MAKE = f"""
import json
from bench.links.intake import city_body
marks = []
for i in range({REQUESTS}):
    ticket = json.loads(city_body("T", i))
    shop = ticket["respondent"]["creditCode"]
    marks.append([ticket["contactPhone"], ticket["contactIdCard"], shop])
print(json.dumps(marks))
"""


def pushed() -> list[list[str]]:
    run = subprocess.run([sys.executable, "-c", MAKE], cwd=REPO, capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stderr
    made: Any = json.loads(run.stdout)
    return [list(m) for m in made]


def test_only_every_twentieth_request_repeats_a_consumer_and_shop_and_each_id_number_is_valid() -> None:
    made = pushed()
    seen: set[tuple[str, str]] = set()
    repeats = []
    for i, (phone, id_number, shop) in enumerate(made):
        marks = {("phone:" + phone, shop), ("id:" + id_number, shop)}
        if marks & seen:
            repeats.append(i)
        seen |= marks
    assert repeats == [i for i in range(REQUESTS) if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1]
    ids = {id_number for _, id_number, _ in made}
    assert len(ids) == REQUESTS - len(repeats)  # one of its own per consumer
    for i in (0, 999, 1000, 21_000, 42_000, REQUESTS - 2):
        assert normalize_resident_id(made[i][1]) == made[i][1]
