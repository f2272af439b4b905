"""Command line: `python -m simulators.province12345 --port 8317 [--username U --password-env VAR] [--gbk]`."""

from __future__ import annotations

import argparse
import os
import sys

from gateway.logs import configure_logging
from simulators.province12345.app import SOAP_PATH, BehaviourUpdate, Province12345
from simulators.province12345.runner import build_server


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators.province12345",
                                description="Provincial 12345 SOAP system simulator (development and tests only).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8317)
    p.add_argument("--username", help="require a WS-Security UsernameToken with this username")
    p.add_argument("--password-env", default="PROVINCE12345_SIM_PASSWORD",
                   help="environment variable holding the UsernameToken password (with --username)")
    p.add_argument("--no-seed", action="store_true", help="start without the fixture work orders")
    p.add_argument("--gbk", action="store_true", help="answer in GBK instead of UTF-8")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before every SOAP answer (a slow partner)")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    password = None
    if args.username:
        password = os.environ.get(args.password_env)
        if not password:
            print(f"province 12345 simulator: --username needs the password in ${args.password_env}", file=sys.stderr)
            return 2
    province = Province12345(username=args.username, password=password)
    if not args.no_seed:
        province.seed_fixtures()
    province.update_behaviour(BehaviourUpdate(delay_seconds=args.delay,
                                              response_charset="GBK" if args.gbk else "UTF-8"))
    configure_logging(args.log_level)
    print(f"provincial 12345 simulator: WSDL at http://{args.host}:{args.port}{SOAP_PATH}?wsdl", file=sys.stderr)
    build_server(province, host=args.host, port=args.port).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
