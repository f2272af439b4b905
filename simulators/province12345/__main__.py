"""Command line: `python -m simulators.province12345 --port 8317 [--no-auth] [--gbk] [--delay S]`."""

from __future__ import annotations

import argparse
import logging
import sys

from adapters.secrets import demo_secret
from simulators.province12345.app import SOAP_PATH, BehaviourUpdate, Province12345

# The token the demo gateway presents (config/adapters/province-12345-soap.yaml, options.wsse). Anyone
# reading this file knows the default password: it protects nothing and is for a loopback demo only.
DEV_USERNAME = "hig-gateway"
PASSWORD_ENV = "PARTNER_PROVINCE12345_WSSE_PASSWORD"  # noqa: S105 - the name of a variable
DEV_PASSWORD = "dev-province12345-wsse-password"  # noqa: S105 - development only, see above


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators.province12345",
                                description="Provincial 12345 SOAP system simulator (development and tests only).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8317)
    p.add_argument("--username", default=DEV_USERNAME, help="the UsernameToken username callers must present")
    p.add_argument("--password-env", default=PASSWORD_ENV,
                   help=f"environment variable holding its password (unset: the development password {DEV_PASSWORD})")
    p.add_argument("--no-auth", action="store_true", help="accept calls without a WS-Security UsernameToken")
    p.add_argument("--no-seed", action="store_true", help="start without the fixture work orders")
    p.add_argument("--gbk", action="store_true", help="answer in GBK instead of UTF-8")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before every SOAP answer (a slow partner)")
    p.add_argument("--log-level", default="INFO")
    return p


def main(argv: list[str] | None = None) -> int:
    from simulators.province12345.runner import build_server

    args = parser().parse_args(argv)
    if args.no_auth:
        province = Province12345()
    else:
        password = demo_secret(args.password_env, args.password_env.lower()) or DEV_PASSWORD
        province = Province12345(username=args.username, password=password)
    if not args.no_seed:
        province.seed_fixtures()
    province.update_behaviour(BehaviourUpdate(delay_seconds=args.delay,
                                              response_charset="GBK" if args.gbk else "UTF-8"))
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s %(message)s")
    print(f"provincial 12345 simulator: WSDL at http://{args.host}:{args.port}{SOAP_PATH}?wsdl", file=sys.stderr)
    build_server(province, host=args.host, port=args.port).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
