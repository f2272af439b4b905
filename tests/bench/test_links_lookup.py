"""The duplicate-link look-up benchmark (bench/links/lookup.py, the 1,000,000-ticket figures of docs/benchmarks.md)
measures what it says, at a size CI can afford: each store filled through its own intake write, a *hit* (a new ticket
of a stored complainant-respondent pair) finds that pair's tickets, a *miss* (a complainant never seen) finds none,
and the look-up as it runs now finds what the earlier one on the store thread found.

Run as the command line runs it, in a process of its own: the benchmark's modules set the phone-hash key in the
environment on import, which the gateways other tests start would inherit."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.ops.ops_support import REPO

LINE = re.compile(r"^  (sqlite|redis) (hit|miss)( \(before: on the store thread\))?: p50 [\d.]+ ms, p99 [\d.]+ ms, "
                  r"([\d.]+) candidates per look-up$", re.MULTILINE)


def test_hits_find_their_pair_and_misses_find_nothing_on_both_stores() -> None:
    run = subprocess.run([sys.executable, "-m", "bench.links.lookup", "--n", "3000", "--lookups", "40",
                          "--store", "both"], cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    found = {(store, kind, bool(before)): float(per) for store, kind, before, per in LINE.findall(run.stdout)}
    assert set(found) == {("sqlite", "hit", False), ("sqlite", "hit", True), ("sqlite", "miss", False),
                          ("sqlite", "miss", True), ("redis", "hit", False), ("redis", "miss", False)}, run.stdout
    # Every hit probes a stored ticket's own pair (one in twenty pairs has a second ticket): at least one each.
    assert all(per >= 1.0 for (_, kind, _), per in found.items() if kind == "hit"), found
    assert all(per == 0.0 for (_, kind, _), per in found.items() if kind == "miss"), found
    assert found[("sqlite", "hit", False)] == found[("sqlite", "hit", True)] == found[("redis", "hit", False)]
    assert re.search(r"^sqlite: filled 3,000 in", run.stdout, re.MULTILINE), run.stdout
