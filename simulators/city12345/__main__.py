"""`python -m simulators.city12345 --port 8411 --gateway http://127.0.0.1:8315 [--push-all]`."""

from __future__ import annotations

import argparse

from simulators.city12345.app import ADAPTER_ID, DEFAULT_PORT, City12345, create_app
from simulators.peer import DEFAULT_GATEWAY_URL, run_cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.city12345",
                                     description="The city 12345 hotline: pushes tickets, receives callbacks.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--gateway", default=DEFAULT_GATEWAY_URL, help="the gateway's base URL")
    parser.add_argument("--adapter-id", default=ADAPTER_ID)
    parser.add_argument("--api-key", default=None, help="default: $PARTNER_CITY12345_API_KEY or the dev key")
    parser.add_argument("--callback-secret", default=None,
                        help="whsec_ secret; default: $PARTNER_CITY12345_CALLBACK_SECRET or the dev secret")
    parser.add_argument("--push-all", action="store_true", help="push every seed ticket once started")
    parser.add_argument("--fresh", action="store_true", help="with --push-all: new ticket numbers each time")
    args = parser.parse_args(argv)
    sim = City12345(gateway_url=args.gateway, adapter_id=args.adapter_id, api_key=args.api_key,
                    callback_secret=args.callback_secret)

    def push_all() -> None:
        for name in sim.tickets:
            sim.push_fixture(name, fresh=args.fresh)

    run_cli(create_app(sim), name="city12345", host=args.host, port=args.port,
            after_start=push_all if args.push_all else None, report=lambda: sim.pusher.pushes())


if __name__ == "__main__":
    main()
