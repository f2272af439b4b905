"""The duplicate-link look-up benchmark (bench/links/lookup.py, the 1,000,000-ticket figures of docs/benchmarks.md)
measures what it says, at a size CI can afford: each store filled through its own intake write, a *hit* (a new ticket
of a stored complainant-respondent pair) finds that pair's tickets, a *miss* (a complainant never seen) finds none,
and the SQLite store reads the link log into memory as a serving gateway does at start.

Run as the command line runs it, in a process of its own: the benchmark's modules set the phone-hash key in the
environment on import, which the gateways other tests start would inherit."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.ops.ops_support import REPO

LINE = re.compile(r"^  (sqlite|redis) (hit|miss): p50 [\d.]+ ms, p99 [\d.]+ ms, ([\d.]+) candidates per look-up$",
                  re.MULTILINE)


def test_hits_find_their_pair_and_misses_find_nothing_on_both_stores() -> None:
    run = subprocess.run([sys.executable, "-m", "bench.links.lookup", "--n", "3000", "--lookups", "40",
                          "--store", "both"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    found = {(store, kind): float(per) for store, kind, per in LINE.findall(run.stdout)}
    assert set(found) == {("sqlite", "hit"), ("sqlite", "miss"), ("redis", "hit"), ("redis", "miss")}, run.stdout
    # Every hit probes a stored ticket's own pair (one in twenty pairs has a second ticket): at least one each.
    assert all(per >= 1.0 for (_, kind), per in found.items() if kind == "hit"), found
    assert all(per == 0.0 for (_, kind), per in found.items() if kind == "miss"), found
    assert found[("sqlite", "hit")] == found[("redis", "hit")]  # the memory finds what Redis's sorted sets find
    assert re.search(r"^  sqlite memory: the link log read in [\d.]+ s, \+[\d,]+ MiB resident$", run.stdout,
                     re.MULTILINE), run.stdout
    assert re.search(r"^sqlite: filled 3,000 in", run.stdout, re.MULTILINE), run.stdout
