"""Quarantine dedupe through a live gateway: the same unmappable payload pushed again while still unresolved is one
quarantine record with a count and the time it was last seen (ops API, dashboard page, metric)."""

from __future__ import annotations

import json
import re

from gateway.ops.deps import SESSION_COOKIE
from simulators.peer import DEV_CREDENTIALS
from tests.ops.ops_support import TOKENS, OpsGateway, city_complaint
from tests.ops.test_ops_metrics import sample

CITY = "city-12345-rest"


async def push_over_http(gw: OpsGateway, body: bytes) -> dict[str, object]:
    response = await gw.client.post(f"/api/v1/inbound/{CITY}/tickets", content=body,
                                    headers={"Content-Type": "application/json; charset=utf-8",
                                             "X-Api-Key": DEV_CREDENTIALS["PARTNER_CITY12345_API_KEY"]})
    assert response.status_code == 422, response.text  # unmappable: kept in quarantine
    answer: dict[str, object] = response.json()
    return answer


async def test_three_pushes_of_one_unmappable_payload_make_one_record_counted_three_times(gw: OpsGateway) -> None:
    body = json.dumps(city_complaint("KL-QDUP-1", contactIdCard="522601200109098874"),  # a wrong check digit
                      ensure_ascii=False).encode("utf-8")
    answers = [await push_over_http(gw, body) for _ in range(3)]
    ids = {a["quarantine_id"] for a in answers}
    assert len(ids) == 1 and None not in ids
    other = await push_over_http(gw, json.dumps(city_complaint("KL-QDUP-2", contactIdCard="522601200109098874"),
                                                ensure_ascii=False).encode("utf-8"))
    assert other["quarantine_id"] not in ids  # another payload, another record

    listed = (await gw.get("/api/v1/quarantine")).json()
    assert len(listed) == 2
    [record] = [q for q in listed if q["quarantine_id"] in ids]
    assert record["times_seen"] == 3 and record["adapter_id"] == CITY
    assert record["last_seen_at"] >= record["received_at"]
    assert [e["rule"] for e in record["errors"]] == ["invalid_resident_id"]
    [single] = [q for q in listed if q["quarantine_id"] not in ids]
    assert single["times_seen"] == 1

    metrics = (await gw.client.get("/metrics")).text
    assert sample(metrics, "hig_quarantine_open", adapter=CITY) == 2  # records still open
    assert sample(metrics, "hig_intake_total", adapter=CITY, outcome="quarantined") == 4  # every push counted

    gw.client.cookies.set(SESSION_COOKIE, TOKENS["viewer"])
    page = (await gw.client.get("/ops/quarantine")).text
    row = re.search(rf'<tr id="quarantine-{record["quarantine_id"]}">(.*?)</tr>', page, re.S)
    assert row is not None
    assert re.search(r'<td class="num times-seen">3</td>', row.group(1))
