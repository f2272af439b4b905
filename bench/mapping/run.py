"""Mapping engine throughput: the compiled city-12345-rest spec against a hand-written Python function.

Both turn the city 12345 platform's camelCase JSON into the same canonical Ticket (checked before timing),
so the ratio is the price of writing the mapping as configuration instead of code.

Run from the repository root:  .venv/bin/python -m bench.mapping.run [--n 2000] [--rounds 5] [--write-docs]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from contracts.identifiers import classify_enterprise_code, normalize_phone, normalize_resident_id
from contracts.ticket import Ticket
from mapping import Mapped, apply, spec_for
from mapping.goldens import fixtures_of, read_payload

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Mapping engine"
COMMAND = ".venv/bin/python -m bench.mapping.run --write-docs"
ADAPTER = "city-12345-rest"

CST = timezone(timedelta(hours=8))
_SPACES = re.compile(r"\s+")
_LINE_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_APPEAL_TYPES = {"01": "01", "02": "02", "03": "03"}
_URGENCY = {"1": "1", "2": "2", "3": "3", "4": "4"}
_GENDER = {"0": "0", "1": "1", "2": "2"}


def _fold(text: str | None) -> str | None:
    return _SPACES.sub(" ", text).strip() or None if text else None


def _fold_lines(text: str) -> str:
    lines = (_LINE_SPACES.sub(" ", line).strip() for line in text.replace("\r\n", "\n").split("\n"))
    return _BLANK_LINES.sub("\n", "\n".join(lines)).strip()


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = datetime.strptime(text, "%Y-%m-%d %H:%M:%S")  # the zone follows
    return moment.replace(tzinfo=CST) if moment.tzinfo is None else moment.astimezone(CST)


def _day(text: str | None) -> date | None:
    if not text:
        return None
    for form in ("%Y-%m-%d", "%Y/%m/%d"):
        try:
            return datetime.strptime(text, form).date()  # a calendar day
        except ValueError:
            continue
    raise ValueError(f"not a date: {text!r}")


def _money(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    text = str(value).replace(",", "").removesuffix("元").removeprefix("￥").strip()
    return Decimal(text)


def _code(value: Any, kind: str) -> str | None:
    code = classify_enterprise_code(value) if value else None
    return code.value if code is not None and code.kind == kind else None


def _prune(group: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in group.items() if value is not None}


def hand_written(payload: dict[str, Any]) -> Ticket | None:
    """The city 12345 mapping written as plain Python; None for 建议/求助/表扬 (returned to 12345)."""
    appeal_type = str(payload.get("appealTypeCode") or "")
    if appeal_type in ("04", "05", "06"):
        return None
    received = _time(payload.get("createTime"))
    respondent = payload.get("respondent") or {}
    goods = payload.get("goods") or {}
    content = payload.get("appealContent") or ""
    content = _fold_lines(content)[:4000]
    title = _fold(payload.get("appealTitle"))
    id_card = (payload.get("contactIdCard") or "").strip()
    phone = payload.get("contactPhone")
    platform_no = (payload.get("platformNo") or "").strip()
    area = payload.get("areaCode")
    area_text = str(area).strip() if area not in (None, "") else None
    quantity = goods.get("quantity")
    doc = {
        "source": _prune({
            "source_system": "city-12345",
            "adapter_id": ADAPTER,
            "source_ticket_no": payload["hotlineNo"].strip(),
            "related_ticket_nos": [platform_no] if platform_no else None,
            "source_received_at": received,
            "source_deadline": _time(payload.get("limitTime")),
        }),
        "classification": _prune({
            "business_type": _APPEAL_TYPES[appeal_type],
            "channel": "09",
            "origin_hotline": "12345",
            "urgency": _URGENCY.get(str(payload.get("urgentLevel") or ""), "4") if payload.get("urgentLevel") else None,
        }),
        "registration": _prune({
            "registered_at": received,
            "title": title[:200] if title else None,
            "content": content,
            "request": _fold(payload.get("appealRequest")),
        }),
        "complainant": _prune({
            "name": (payload.get("contactName") or "").strip() or None,
            "phone": normalize_phone(phone) if phone else None,
            "address": _fold(payload.get("contactAddress")),
            "gender": _GENDER.get(str(payload["contactSex"]), "0") if payload.get("contactSex") else None,
            "id_type": "01" if id_card else None,
            "id_number": normalize_resident_id(id_card) if id_card else None,
        }),
        "respondent": _prune({
            "name": _fold(respondent.get("name")),
            "uscc": _code(respondent.get("creditCode"), "uscc"),
            "legacy_registration_no": _code(respondent.get("creditCode"), "registration_no"),
            "operating_address": _fold(respondent.get("address")),
            "operating_region_code": str(area) if respondent.get("name") and area else None,
        }),
        "subject": _prune({
            "goods_name": _fold(goods.get("name")),
            "brand": _fold(goods.get("brand")),
            "model_spec": _fold(goods.get("spec")),
            "quantity": Decimal(str(quantity)) if quantity not in (None, "") else None,
            "amount": _money(goods.get("amount")),
            "dispute_date": _day(goods.get("buyDate")),
        }),
        "occurrence": _prune({
            "incident_region_code": area_text,
            "incident_address": _fold(payload.get("eventAddress")),
        }),
        "routing": _prune({
            "handler_org_code": payload.get("acceptDeptCode") or None,
            "handler_org_name": payload.get("acceptDeptName") or None,
        }),
        "attachments": [
            _prune({
                "uri": item.get("fileUrl"),
                "sha256": item["sha256"].strip().lower() if item.get("sha256") else None,
                "mime": item.get("mimeType"),
                "name": item.get("fileName"),
                "size": int(item["fileSize"]) if item.get("fileSize") is not None else None,
            })
            for item in payload.get("attachments") or []
        ],
    }
    return Ticket.model_validate(doc)


def engine(payload: dict[str, Any]) -> Ticket | None:
    result = apply(spec, payload)
    return result.ticket if isinstance(result, Mapped) else None


spec = spec_for(ADAPTER)


def payloads() -> list[dict[str, Any]]:
    """The city fixtures that map to a ticket: the shapes the bench times."""
    found = []
    for fixture in fixtures_of(ADAPTER):
        payload = read_payload(fixture.path, spec)
        if isinstance(apply(spec, payload), Mapped):
            found.append(payload)
    return found


def same_output(batch: list[dict[str, Any]]) -> None:
    """Refuse to time two functions that do not produce the same tickets."""
    for payload in batch:
        left, right = engine(payload), hand_written(payload)
        assert left is not None and right is not None
        a = left.model_dump(mode="json", exclude={"ticket_id"})
        b = right.model_dump(mode="json", exclude={"ticket_id"})
        if a != b:
            raise SystemExit(f"the two mappings differ for {payload['hotlineNo']}:\n{a}\n{b}")


def throughput(function: Callable[[dict[str, Any]], Ticket | None], batch: list[dict[str, Any]], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        function(batch[i % len(batch)])
    return n / (time.perf_counter() - start)


def measure(n: int, rounds: int) -> tuple[float, float]:
    """Best-of-rounds tickets per second for the engine and the hand-written function, interleaved."""
    batch = payloads()
    same_output(batch)
    throughput(engine, batch, n // 10)  # warm caches (code tables, regions, phone metadata)
    throughput(hand_written, batch, n // 10)
    best_engine = best_hand = 0.0
    for _ in range(rounds):
        best_engine = max(best_engine, throughput(engine, batch, n))
        best_hand = max(best_hand, throughput(hand_written, batch, n))
    return best_engine, best_hand


def section(engine_rate: float, hand_rate: float, n: int, rounds: int) -> str:
    ratio = engine_rate / hand_rate
    return f"""{SECTION}

The compiled `city-12345-rest` spec against a hand-written Python function that produces the same
canonical `Ticket` from the city 12345 platform's JSON (equality is checked before timing). Both end
in `Ticket.model_validate`, which does the contract's own checks (phone, ID, region, code tables).
Four mapped fixture shapes in turn, {n} tickets per round, best of {rounds} interleaved rounds, one process.

| mapping | tickets/s |
|---|---:|
| compiled spec (`mapping.apply`) | {engine_rate:,.0f} |
| hand-written function | {hand_rate:,.0f} |
| **ratio (engine / hand-written)** | **{ratio:.2f}** (target ≥ 0.50) |

Command: `{COMMAND}` — Python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs,
load average {os.getloadavg()[0]:.1f} when measured. Throughput moves with the machine's load, the ratio
much less: on the shared 2-CPU development machine (load 4–7) repeated runs gave 0.63–0.84. The
engine's extra cost is its per-field plan (about 35 small closures per ticket) and reading a time
once per target that takes it; the contract's validation dominates both columns.
"""


def write_docs(text: str) -> None:
    """Replace (or add) this section of docs/benchmarks.md, leaving the other sections as they are."""
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    start = current.find(f"\n{SECTION}\n")
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + 1)
        updated = current[:start + 1] + text + (current[end:] if end != -1 else "")
    DOCS.write_text(updated, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="tickets per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true", help=f"replace the {SECTION!r} section of {DOCS}")
    args = parser.parse_args()
    engine_rate, hand_rate = measure(args.n, args.rounds)
    ratio = engine_rate / hand_rate
    print(f"compiled spec:  {engine_rate:10,.0f} tickets/s")
    print(f"hand-written:   {hand_rate:10,.0f} tickets/s")
    print(f"ratio:          {ratio:10.2f}  (target >= 0.50)")
    if args.write_docs:
        write_docs(section(engine_rate, hand_rate, args.n, args.rounds))
        print(f"wrote the {SECTION!r} section of {DOCS}", file=sys.stderr)
    if ratio < 0.5:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
