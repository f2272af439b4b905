"""Mapping engine throughput: the compiled city-12345-rest spec against a hand-written Python function.

Both turn the city 12345 platform's camelCase JSON into the same canonical Ticket (checked before timing),
so the ratio is the price of writing the mapping as configuration instead of code.

Run from the repository root:  .venv/bin/python -m bench.mapping.run [--n 2000] [--rounds 5] [--write-docs]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common.hand_mapping import ADAPTER, hand_written
from contracts.ticket import Ticket
from mapping import Mapped, apply, spec_for
from mapping.goldens import fixtures_of, read_payload

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "benchmarks.md"
SECTION = "## Mapping engine"
COMMAND = ".venv/bin/python -m bench.mapping.run --write-docs"


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
