"""The pushes of the linking benchmarks (bench/links/intake.py, reused by bench/links/inproc.py) hold the duplicates
they say and no others: one in twenty repeats the consumer and shop of the request three before; no other two share
a complainant mark (phone or ID number) and a shop, over as many requests as a long in-turn run sends (both sides
together, 120,000). Before, the ID number repeated every 21,000 consumers and, with the shop, every 42,000: past
that, most tickets of the side with linking on were duplicates and were linked."""

from __future__ import annotations

import json
from collections import Counter

from bench.links.intake import DUPLICATE_EVERY, city_body
from contracts.identifiers import normalize_resident_id

REQUESTS = 120_000


def test_only_every_twentieth_request_repeats_a_consumer_and_shop() -> None:
    seen: Counter[tuple[str, str]] = Counter()
    repeats = []
    for i in range(REQUESTS):
        ticket = json.loads(city_body("T", i))
        shop = ticket["respondent"]["creditCode"]
        marks = [("phone:" + ticket["contactPhone"], shop), ("id:" + ticket["contactIdCard"], shop)]
        if any(seen[mark] for mark in marks):
            repeats.append(i)
        seen.update(marks)
    assert repeats == [i for i in range(REQUESTS) if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1]


def test_each_consumer_id_number_is_a_valid_one_of_its_own() -> None:
    ids = [json.loads(city_body("T", i))["contactIdCard"] for i in (0, 999, 1000, 21_000, 42_000, 8_999_999)]
    assert len(set(ids)) == len(ids)
    for number in ids:
        assert normalize_resident_id(number) == number
