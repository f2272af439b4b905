"""How far the intake targets can be reached at all: the required work done with bare libraries, against the
bare endpoint's own CPU per request measured in the same run.

An intake must at least validate the canonical national ticket (the contract: phone, ID, region, code
tables), serialise it, and store it durably with its national delivery before it answers; a SOAP intake
also parses the envelope and checks the WS-Security digest and nonce. Here each of those is done in this
process with the bare library (pydantic on a prepared canonical document, lxml, hashlib, sqlite3 with one
transaction per 16 tickets at synchronous=FULL), nothing of the gateway's own code on the way: no HTTP
middleware, authentication, mapping engine, routing, deadlines, idempotency lookup or logging. The bare
endpoint is `bench/common/baseline.py` under the same load generator as the intake benchmarks.

  floor CPU per request = bare endpoint's CPU per request - its body validation + the required work
  best possible ratio   = bare endpoint's CPU per request / floor CPU per request

Throughput on a CPU-bound server goes as 1 / CPU per request, so no gateway doing the required work can beat
that ratio; what it has left at the targets (0.6 REST, 0.4 SOAP) is the room for its own layers.

  .venv/bin/python -m bench.floor.run [--n 4000] [--seconds 6] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

from bench.common import payloads
from bench.common.baseline import CityTicket, ProvinceOrder
from bench.common.intake import rest_factories, soap_factories
from bench.common.load import closed_loop
from bench.common.procs import cpu_seconds, machine_load, start_baseline
from bench.common.report import machine, write_section
from contracts.ticket import Ticket
from gateway.soap.wsse import password_digest
from gateway.store.phone_hash import hash_phone
from mapping import Mapped, apply, spec_for

SECTION = "What the intake targets leave room for"
TARGETS = {"rest": 0.6, "soap": 0.4}
_PHONE = "+8613800138000"  # the complainant's number, in the form a validated ticket holds it


@dataclass
class Floor:
    kind: str
    baseline_ms: float  # the bare endpoint's CPU per request, HTTP included
    body_ms: float  # of which its pydantic validation of the body
    work: dict[str, float]  # the required work, ms per ticket

    @property
    def floor_ms(self) -> float:
        return self.baseline_ms - self.body_ms + sum(self.work.values())

    @property
    def best_ratio(self) -> float:
        return self.baseline_ms / self.floor_ms

    @property
    def room_ms(self) -> float:
        """CPU per request left for everything beyond the required work at the target ratio."""
        return self.baseline_ms / TARGETS[self.kind] - self.floor_ms


def cpu_ms_each(items: Sequence[Any], fn: Callable[[Any], object]) -> float:
    """CPU milliseconds per item of fn over all items (best of three passes)."""
    best = float("inf")
    for _ in range(3):
        started = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - started)
    return best / len(items) * 1000


def canonical_documents(adapter: str, partner: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The canonical ticket of each partner payload, as the JSON document a mapping produces (not timed)."""
    spec = spec_for(adapter)
    documents = []
    for payload in partner:
        result = apply(spec, payload)
        if not isinstance(result, Mapped):
            raise SystemExit(f"{adapter}: a fixture does not map: {result}")
        documents.append(result.ticket.model_dump(mode="json"))
    return documents


class BareStore:
    """The durable write of an intake with sqlite3 alone: ticket, raw payload and national delivery rows (and
    the WS-Security nonce for SOAP) with their indexes; one transaction per 16 tickets, as group commit makes
    under load; synchronous=FULL, as the gateway's acknowledged writes."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript("""
            CREATE TABLE tickets (ticket_id TEXT PRIMARY KEY, adapter TEXT, source_no TEXT, phone_hash TEXT,
                                  status TEXT, created_at TEXT, body TEXT, UNIQUE (adapter, source_no));
            CREATE INDEX tickets_phone ON tickets (phone_hash);
            CREATE TABLE raw (ticket_id TEXT PRIMARY KEY, body BLOB);
            CREATE TABLE deliveries (id INTEGER PRIMARY KEY, ticket_id TEXT, lane TEXT, state TEXT, priority INT,
                                     due REAL, body BLOB);
            CREATE INDEX deliveries_claim ON deliveries (lane, state, priority, due);
            CREATE INDEX deliveries_ticket ON deliveries (ticket_id);
            CREATE TABLE nonces (scope TEXT, nonce TEXT, expires REAL, PRIMARY KEY (scope, nonce));
        """)
        self.key = os.urandom(32)

    def write_all(self, tickets: Sequence[tuple[str, bytes, bytes, str | None]]) -> None:
        for start in range(0, len(tickets), 16):
            self.db.execute("BEGIN IMMEDIATE")
            for source_no, ticket_json, raw, nonce in tickets[start:start + 16]:
                ticket_id = str(uuid.uuid4())
                phone = hash_phone(_PHONE, self.key, normalized=True)
                self.db.execute("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (ticket_id, "adapter", source_no, phone, "received", "2026-11-29", ticket_json))
                self.db.execute("INSERT INTO raw VALUES (?, ?)", (ticket_id, raw))
                self.db.execute("INSERT INTO deliveries (ticket_id, lane, state, priority, due, body) "
                                "VALUES (?, 'national', 'pending', 5, ?, ?)", (ticket_id, time.time(), ticket_json))
                if nonce is not None:
                    self.db.execute("INSERT INTO nonces VALUES ('province', ?, ?)", (nonce, time.time() + 600))
            self.db.execute("COMMIT")


def required_work(kind: str, n: int, tag: str, work_dir: Path) -> tuple[float, dict[str, float]]:
    """(the bare endpoint's body validation, {step: ms per ticket}) over n distinct tickets."""
    if kind == "rest":
        bodies = [payloads.city_body(tag, i) for i in range(n)]
        partner = [json.loads(b) for b in bodies]
        body_ms = cpu_ms_each(bodies, CityTicket.model_validate_json)
        documents = canonical_documents(payloads.CITY_ADAPTER, partner)
        work = {"parse the JSON body": cpu_ms_each(bodies, json.loads)}
        nonces: list[str | None] = [None] * n
    else:
        orders = [payloads.province_order(tag, i) for i in range(n)]
        json_bodies = [payloads.province_body(tag, i) for i in range(n)]
        body_ms = cpu_ms_each(json_bodies, ProvinceOrder.model_validate_json)
        created = "2026-11-29T08:00:00Z"
        password = "floor-password"  # noqa: S105 - a benchmark's made-up partner password
        bodies = [payloads.soap_envelope(order, "gz-12345", password, created) for order in orders]
        documents = canonical_documents(payloads.PROVINCE_ADAPTER, orders)
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
        raw_nonces = [os.urandom(16) for _ in range(n)]
        nonces = [base64.b64encode(x).decode("ascii") for x in raw_nonces]
        work = {
            "parse the SOAP envelope (lxml, no DTD, no network)": cpu_ms_each(
                bodies, lambda body: etree.fromstring(body, parser)),
            "check the WS-Security PasswordDigest": cpu_ms_each(
                raw_nonces, lambda nonce: password_digest(nonce, created, password)),
        }
    tickets = [Ticket.model_validate(doc) for doc in documents]
    work["validate the canonical ticket (pydantic, the contract's checks)"] = cpu_ms_each(
        documents, Ticket.model_validate)
    dumped: list[bytes] = []
    work["serialise it (model_dump_json)"] = cpu_ms_each(tickets, lambda t: dumped.append(t.model_dump_json().encode()))
    rows = [(f"{kind}-{i}", dumped[i], bodies[i], nonces[i]) for i in range(n)]
    store = BareStore(work_dir / f"{kind}.db")
    started = time.process_time()
    store.write_all(rows)
    work["store ticket, raw payload and delivery (sqlite3, FULL)"] = (time.process_time() - started) / n * 1000
    return body_ms, work


async def baseline_cpu_ms(kind: str, seconds: float, connections: int, work_dir: Path) -> float:
    """The bare endpoint's CPU per request under the intake benchmarks' closed-loop load."""
    tag = payloads.run_tag()
    _, make = rest_factories("unused", tag) if kind == "rest" else soap_factories("unused", tag)
    server = start_baseline(work_dir)
    try:
        _, index = await closed_loop("127.0.0.1", server.port, make, connections=connections, seconds=1.0)
        before = cpu_seconds(server.pid)
        result, _ = await closed_loop("127.0.0.1", server.port, make, connections=connections, seconds=seconds,
                                      start_index=index)
        result.cpu = cpu_seconds(server.pid) - before
        return result.cpu_ms_per_request
    finally:
        server.stop()


def table(floors: list[Floor]) -> str:
    lines = ["| intake | bare endpoint CPU/request | of which its body validation | required work (bare libraries) "
             "| floor CPU/request | best possible ratio | target | room for the gateway's own layers |",
             "|---|---:|---:|---|---:|---:|---:|---:|"]
    for f in floors:
        work = "<br>".join(f"{step}: {ms:.3f} ms" for step, ms in f.work.items())
        lines.append(f"| {f.kind.upper()} | {f.baseline_ms:.3f} ms | {f.body_ms:.3f} ms | {work} | {f.floor_ms:.3f} ms "
                     f"| **{f.best_ratio:.2f}** | ≥ {TARGETS[f.kind]} | {f.room_ms:.3f} ms |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4000, help="distinct tickets per measurement")
    parser.add_argument("--seconds", type=float, default=6.0, help="load on the bare endpoint, per kind")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load_start = machine_load()
    floors = []
    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
        work_dir = Path(tmp)
        for kind in ("rest", "soap"):
            baseline_ms = asyncio.run(baseline_cpu_ms(kind, args.seconds, args.connections, work_dir))
            body_ms, work = required_work(kind, args.n, payloads.run_tag(), work_dir)
            floors.append(Floor(kind, baseline_ms, body_ms, work))
            print(f"{kind}: bare endpoint {baseline_ms:.3f} ms/request (body validation {body_ms:.3f}); required "
                  f"work {sum(work.values()):.3f} ms; best possible ratio {floors[-1].best_ratio:.2f}", flush=True)
    text = table(floors)
    print(text)
    if args.write_docs:
        write_section(SECTION, f"""## {SECTION}

`bench/floor/run.py`: the work an intake cannot skip, done with bare libraries in one process, added to the
bare endpoint's own CPU per request measured in the same run under the intake benchmarks' load ({args.connections}
connections). Nothing of the gateway is in it: no HTTP middleware, authentication, mapping engine, routing,
deadlines, idempotency lookup or logging; the store write is three plain inserts (and the nonce) per ticket,
16 tickets per transaction. A server whose throughput is bound by its CPU cannot do better than the bare
endpoint's CPU per request divided by this floor. {args.n:,} distinct tickets per step, best of three passes
(warm caches, as under steady load).

{text}

- The required work leaves room: a gateway adding nothing of its own would reach about these ratios. What the
  gateway measures beyond this floor (its CPU per request in the REST and SOAP sections above, less the floor)
  is its own layers: the FastAPI route with its dependencies and middleware, authentication, the declarative
  mapping engine, routing, deadlines, the idempotency lookup, the group-commit hop to the store's thread,
  logging and metrics.
- For the REST target of 0.6, all of those together would have to cost less than the difference between the
  floor and the bare endpoint's CPU per request divided by 0.6: the last column of the table.
- Machine: {machine(load_start, machine_load())}.

Reproduce: `.venv/bin/python -m bench.floor.run --write-docs` (`--n`, `--seconds`).""")


if __name__ == "__main__":
    main()
