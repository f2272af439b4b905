"""`python -m simulators.emergency --port 8415 --gateway http://127.0.0.1:8315 [--push-all]`."""

from __future__ import annotations

import argparse

from simulators.emergency.app import ADAPTER_ID, DEFAULT_PORT, EmergencyCommand, create_app
from simulators.peer import DEFAULT_GATEWAY_URL, run_cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.emergency",
                                     description="Emergency command: sends incidents, receives 特急 tickets.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--gateway", default=DEFAULT_GATEWAY_URL, help="the gateway's base URL")
    parser.add_argument("--adapter-id", default=ADAPTER_ID)
    parser.add_argument("--api-key", default=None, help="default: $PARTNER_EMERGENCY_API_KEY or the dev key")
    parser.add_argument("--callback-secret", default=None,
                        help="whsec_ secret; default: $PARTNER_EMERGENCY_CALLBACK_SECRET or the dev secret")
    parser.add_argument("--inbox-api-key", default=None, help="require this X-Api-Key on POST /api/tickets")
    parser.add_argument("--push-all", action="store_true", help="push every seed incident once started")
    parser.add_argument("--fresh", action="store_true", help="with --push-all: new event ids each time")
    args = parser.parse_args(argv)
    sim = EmergencyCommand(gateway_url=args.gateway, adapter_id=args.adapter_id, api_key=args.api_key,
                           callback_secret=args.callback_secret, inbox_api_key=args.inbox_api_key)

    def push_all() -> None:
        for name in sim.incidents:
            sim.push_fixture(name, fresh=args.fresh)

    run_cli(create_app(sim), name="emergency", host=args.host, port=args.port,
            after_start=push_all if args.push_all else None, report=lambda: sim.pusher.pushes())


if __name__ == "__main__":
    main()
