"""REST intake (authenticate, map, store, enqueue) against a bare FastAPI endpoint validating the same body.

The gateway (`python main.py serve`, delivery workers off, so only intake is measured) and the bare baseline
(bench/common/baseline.py) run as two server processes; this process is the load generator, driving one of
them at a time in alternating rounds. Every request is a new city 12345 ticket (fixture 01, a 投诉, with a
fresh hotlineNo), pushed with the partner's X-Api-Key. Target: at least 0.6 of the baseline's throughput.

Run from the repository root:  .venv/bin/python -m bench.rest_intake.run [--quick] [--store both] [--write-docs]
"""

from __future__ import annotations

import argparse

from bench.common.intake import add_arguments, intake_table, run_from_arguments
from bench.common.report import machine, write_section

TITLE = "Intake over REST"
TARGET = 0.6
COMMAND = ".venv/bin/python -m bench.rest_intake.run --store both --write-docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    comparisons = run_from_arguments("rest", args)
    if args.write_docs:
        first, last = comparisons[0], comparisons[-1]
        write_section(TITLE, f"""## {TITLE}

`bench/rest_intake/run.py`: `POST /api/v1/inbound/city-12345-rest/tickets` on the gateway (API key, mapping,
routing and deadlines, durable store with the national delivery in its outbox) against a bare FastAPI
endpoint that only validates the same JSON with a pydantic model of the city 12345 payload and answers 202
(`bench/common/baseline.py`). Two server processes, uvicorn as `python main.py serve` runs it (one process,
h11, no access log; the gateway logs its INFO lines as configured); delivery workers off. The load generator
is a third process: {args.connections} keep-alive connections, each sending its next request when the last is
answered, every request a new ticket. {args.rounds} alternating rounds of {args.seconds:g} s per side after a
1 s warm-up; rates are over all rounds, the ratio range is per round. Target ≥ {TARGET}.

{intake_table(comparisons)}

Server CPU per request is the server process's user + system CPU time over its rounds divided by the requests
it answered: it moves much less with the machine's load than req/s does. Where the gateway's time goes, and
what was changed, is in "Whole-gateway benchmarks: summary" above.

Machine: {machine(first.load_start, last.load_end)}.

Reproduce: `{COMMAND}` (`--quick` for a CI-sized run; `--rounds`, `--seconds`, `--connections`).
""")


if __name__ == "__main__":
    main()
