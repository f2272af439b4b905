"""`python -m simulators.legacy --port 8412 [--no-seed]`: waits to be polled by the gateway."""

from __future__ import annotations

import argparse

from simulators.legacy.app import DEFAULT_PORT, LegacyRegistration, create_app
from simulators.peer import run_cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m simulators.legacy",
                                     description="A legacy registration system the gateway polls.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--api-key", default=None, help="the key the gateway must present; default: "
                        "$PARTNER_LEGACY_OUTBOUND_KEY or the dev key")
    parser.add_argument("--callback-secret", default=None,
                        help="whsec_ secret; default: $PARTNER_LEGACY_CALLBACK_SECRET or the dev secret")
    parser.add_argument("--no-seed", action="store_true", help="start without the fixture records")
    parser.add_argument("--charset", default="utf-8", help="the charset of its answers, e.g. gbk as older systems")
    args = parser.parse_args(argv)
    sim = LegacyRegistration(api_key=args.api_key, callback_secret=args.callback_secret, seed=not args.no_seed,
                             charset=args.charset)
    run_cli(create_app(sim), name="legacy", host=args.host, port=args.port)


if __name__ == "__main__":
    main()
