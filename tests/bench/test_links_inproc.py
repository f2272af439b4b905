"""The in-process linking benchmark (bench/links/inproc.py, docs/benchmarks.md) measures what it says, at a size CI
can afford: with linking on, each duplicate it pushes is linked (it and the ticket it repeats show the link), with
linking off nothing is, and every push is accepted on both sides.

Run as the command line runs it, in a process of its own (the benchmark's modules set the phone-hash key and the
partners' secrets in the environment)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.ops.ops_support import REPO

ROUND = re.compile(r"^  round (\d) linking (on|off) *: +\d+ µs CPU per push, (\d+) tickets linked$", re.MULTILINE)


def test_duplicates_are_linked_with_linking_on_and_nothing_is_with_it_off() -> None:
    run = subprocess.run([sys.executable, "-m", "bench.links.inproc", "--rounds", "2", "--pushes", "60",
                          "--warmup", "10", "--duplicates"], cwd=REPO, capture_output=True, text=True, timeout=300,
                         check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    linked = {(int(r), side): int(n) for r, side, n in ROUND.findall(run.stdout)}
    # 70 pushes from a multiple of twenty: the 20th, 40th and 60th repeat the consumer three before, 3 links.
    assert linked == {(1, "on"): 6, (1, "off"): 0, (2, "on"): 6, (2, "off"): 0}, run.stdout
    assert "one in twenty duplicates: linking on" in run.stdout
    assert "Logging error" not in run.stderr  # a second run in the process logs where the first did
