"""SOAP intake (WS-Security UsernameToken digest, envelope parsing, mapping, store, enqueue) against the bare
FastAPI baseline validating the same order as JSON.

The gateway (`python main.py serve`, delivery workers off) and the bare baseline (bench/common/baseline.py)
run as two server processes; this process is the load generator, driving one of them at a time in
alternating rounds. Every request is a new provincial 12345 work order (fixture 01 with a fresh infoid) in
a SubmitTicket envelope with a fresh Nonce and Created, as the partner's client sends it; the baseline gets
the same order as JSON and validates it with a pydantic model. Target: at least 0.4 of the baseline.

Run from the repository root:  .venv/bin/python -m bench.soap_intake.run [--quick] [--store both] [--write-docs]
"""

from __future__ import annotations

import argparse

from bench.common.intake import add_arguments, intake_table, run_from_arguments
from bench.common.report import machine, write_section

TITLE = "Intake over SOAP"
TARGET = 0.4
COMMAND = ".venv/bin/python -m bench.soap_intake.run --store both --write-docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    comparisons = run_from_arguments("soap", args)
    if args.write_docs:
        first, last = comparisons[0], comparisons[-1]
        write_section(TITLE, f"""## {TITLE}

`bench/soap_intake/run.py`: `POST /soap/province-12345-soap` (SubmitTicket; WS-Security UsernameToken with
PasswordDigest, a fresh Nonce remembered by the store, a fresh Created) on the gateway against the bare
baseline of the REST section validating the same work order as JSON with a pydantic model of the
provincial order. Same processes, load generator and rounds as the REST section: {args.connections}
connections, {args.rounds} alternating rounds of {args.seconds:g} s per side. Target ≥ {TARGET}.

{intake_table(comparisons)}

Server CPU per request is the server process's user + system CPU time over its rounds divided by the requests
it answered: it moves much less with the machine's load than req/s does. Where the gateway's time goes, and
what was changed, is in "Whole-gateway benchmarks: summary" above.

Machine: {machine(first.load_start, last.load_end)}.

Reproduce: `{COMMAND}` (`--quick` for a CI-sized run).
""")


if __name__ == "__main__":
    main()
