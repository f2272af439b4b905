"""`python -m simulators.credit --port 8414 [--latency 2.5] [--down]`."""

from __future__ import annotations

import argparse

from simulators.credit.app import DEFAULT_PORT, CreditSupervision, create_app
from simulators.peer import run_cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.credit",
                                     description="The credit supervision system: clues, closed cases, look-ups.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--api-key", default=None, help="the key the gateway must present to pull clues; "
                        "default: $PARTNER_CREDIT_OUTBOUND_KEY or the dev key")
    parser.add_argument("--callback-secret", default=None,
                        help="whsec_ secret; default: $PARTNER_CREDIT_CALLBACK_SECRET or the dev secret")
    parser.add_argument("--inbox-api-key", default=None, help="require this X-Api-Key on POST /api/credit/cases")
    parser.add_argument("--no-seed", action="store_true", help="start without the fixture clues")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before every partner API answer")
    parser.add_argument("--down", action="store_true", help="answer every partner API call with 503")
    args = parser.parse_args(argv)
    sim = CreditSupervision(api_key=args.api_key, callback_secret=args.callback_secret, seed=not args.no_seed,
                            inbox_api_key=args.inbox_api_key)
    sim.faults.latency_seconds = args.latency
    sim.faults.down = args.down
    run_cli(create_app(sim), name="credit", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
