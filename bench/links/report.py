"""The links benchmarks' section of docs/benchmarks.md: look-up latency with a million tickets, intake on and off."""

from __future__ import annotations

from typing import Any

from bench.common.report import write_section

LOOKUP_TITLE = "Duplicate links: look-up with a million tickets"
TARGET_P99_MS = 5.0


def write_lookup_section(n: int, lookups: int, rows: list[tuple[str, float, int, list[Any], str]], machine: str,
                         command: str) -> None:
    lines = ["| store | tickets stored | look-up | p50 | p99 | candidates per look-up | store size | fill rate |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    memory = "; ".join(f"{name}: {note}" for name, _, _, _, note in rows if note)
    for name, seconds, size, results, _ in rows:
        for r in results:
            met = "✓" if r.p99 < TARGET_P99_MS else "✗"
            lines.append(f"| {name} | {n:,} | {r.kind} | {r.p50:.2f} ms | **{r.p99:.2f} ms** {met} | "
                         f"{r.found / len(r.ms):.2f} | {size / 2**20:,.0f} MiB | {n / seconds:,.0f}/s |")
    table = "\n".join(lines)
    write_section(LOOKUP_TITLE, f"""## {LOOKUP_TITLE}

Issue 16 (part 4): at intake, the tickets of the same complainant (phone or ID number) about the same respondent
(USCC, or name and region) received within 30 days are found by an index, never a scan; target p99 under
{TARGET_P99_MS:g} ms with 1,000,000 tickets stored. `bench/links/lookup.py` fills each store in bulk through the
store's own intake write (SQLite: `gateway/store/sqlite/tickets.intake` on one connection, 10,000 tickets a
transaction, synchronous=OFF for the fill only; Redis: the store's INTAKE script, pipelined, on a Redis server the
run starts for itself and stops afterwards), each ticket indexed under its link marks as intake indexes it. The
tickets are the city fixture (~3 KB of JSON with its deadlines) spread over 60 days (two link windows: every one in
the SQLite store's memory, the most it holds), from 600,000 complainants
(phone) about 50,000 respondents (USCC, name and region); one in twenty is a second ticket of an earlier pair a few
days later. Then {lookups:,} look-ups of each kind, one at a time, as intake makes them
(`Store.find_link_candidates`: the new ticket's marks, ±30 days, the candidates' bodies read and parsed): *hit*, a new
ticket of a stored pair; *miss*, a complainant never seen.

{table}

- The index: SQLite appends one row per ticket to `link_log` and finds the keys in the process's memory (read from
  that table when a serving gateway starts: {memory or "not measured"}), then the candidates' bodies by id;
  Redis one sorted set per mark (`{{tickets}}:lk:<hash>`, scored by receipt), one script (a
  ZREVRANGEBYSCORE per mark, then the candidates' bodies): one round trip. A mark is HMAC-SHA256 of
  "complainant|respondent" under the phone hash key: the index holds no phone or ID number.
- A hit costs more than a miss by the candidates' bodies: read (a few KB each) and parsed into tickets.

Machine: {machine}.

Reproduce: `{command}` (about {n // 100_000 * 2} minutes and {n * 4 // 1_000_000 + 1} GiB of disk and of memory for
the private Redis at 1,000,000; `--n 100000` for a quick run).
""")
