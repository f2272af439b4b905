"""Command line: `python -m simulators.national --port 8316 --gateway-status-url URL --secret whsec_...`."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from pydantic import ValidationError

from adapters.secrets import demo_secret
from simulators.national.config import DEV_TOKEN, DEV_WEBHOOK_SECRET, FaultPlan, SimulatorConfig
from simulators.national.runner import build_server


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m simulators.national",
                                description="National 12315 platform simulator (development and tests only).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8316)
    p.add_argument("--gateway-status-url", help="where status events are POSTed, e.g. "
                   "http://127.0.0.1:8315/api/v1/national/status (none: events are only recorded)")
    p.add_argument("--secret", action="append", dest="secrets", metavar="WHSEC",
                   help="Standard Webhooks secret (whsec_<base64>); repeat for rotation, current first "
                   "(default: $HIG_NATIONAL_STATUS_SECRETS, else the demo gateway's generated one, else the "
                   "development secret)")
    auth = p.add_mutually_exclusive_group()
    auth.add_argument("--token", help="token the national API accepts (default: $HIG_NATIONAL_TOKEN, else the "
                      f"demo gateway's generated one under $HIG_DATA_DIR/secrets, else {DEV_TOKEN})")
    auth.add_argument("--no-auth", action="store_true", help="accept national API calls without a token")
    p.add_argument("--api-key-header", default="X-API-Key",
                   help="header that may carry the token instead of 'Authorization: Bearer'")
    p.add_argument("--region", default="522600", help="region code for numbers of tickets that name none")
    p.add_argument("--auto-advance", type=float, metavar="SECONDS",
                   help="walk every new ticket through its lifecycle, one event every SECONDS")
    p.add_argument("--seed", type=int, help="seed for fault draws and retry jitter (deterministic runs)")
    p.add_argument("--state-file", type=Path, help="keep the state in this JSON file across restarts")
    p.add_argument("--event-max-attempts", type=int, default=12, help="per event; 0 = until shut down")
    p.add_argument("--event-retry-initial", type=float, default=0.5, help="first backoff in seconds")
    p.add_argument("--event-retry-max", type=float, default=30.0, help="backoff cap in seconds")
    p.add_argument("--event-timeout", type=float, default=5.0, help="timeout of one POST to the gateway")
    f = p.add_argument_group("fault injection (national API only; also at runtime: POST /sim/faults)")
    f.add_argument("--fault-error-ratio", type=float, default=0.0)
    f.add_argument("--fault-error-status", type=int, default=503, choices=(500, 502, 503, 504))
    f.add_argument("--fault-rate-limit-ratio", type=float, default=0.0, help="429 with Retry-After")
    f.add_argument("--fault-retry-after", type=int, default=1, help="Retry-After seconds of a 429")
    f.add_argument("--fault-latency-ms", type=int, default=0, help="added to every national API call")
    f.add_argument("--fault-timeout-ratio", type=float, default=0.0)
    f.add_argument("--fault-timeout-seconds", type=float, default=30.0, help="how long a timed-out call hangs")
    f.add_argument("--fault-drop-ratio", type=float, default=0.0, help="close the connection without a response")
    f.add_argument("--fault-outage-seconds", type=float, help="503 with Retry-After for this long from start")
    f.add_argument("--fault-outage-until", type=float, help="503 with Retry-After until this epoch second")
    f.add_argument("--fault-lost-unprocessed", action="store_true",
                   help="timed-out and dropped calls are not processed (default: processed, response lost)")
    p.add_argument("--log-level", default="INFO")
    return p


def _demo_secrets() -> list[str]:
    """The status-event secrets the demo gateway verifies with, so `python main.py` and this pair up."""
    found = demo_secret("HIG_NATIONAL_STATUS_SECRETS", "national-status-secret")
    return [s.strip() for s in found.split(",") if s.strip()] if found else [DEV_WEBHOOK_SECRET]


def config_from(args: argparse.Namespace) -> SimulatorConfig:
    import time

    outage_until = args.fault_outage_until
    if args.fault_outage_seconds is not None:
        outage_until = time.time() + args.fault_outage_seconds
    faults = FaultPlan(
        error_ratio=args.fault_error_ratio, error_status=args.fault_error_status,
        rate_limit_ratio=args.fault_rate_limit_ratio, retry_after_seconds=args.fault_retry_after,
        latency_ms=args.fault_latency_ms, timeout_ratio=args.fault_timeout_ratio,
        timeout_seconds=args.fault_timeout_seconds, drop_ratio=args.fault_drop_ratio, outage_until=outage_until,
        lost_responses_processed=not args.fault_lost_unprocessed,
    )
    return SimulatorConfig(
        gateway_status_url=args.gateway_status_url,
        secrets=args.secrets or _demo_secrets(),
        token=None if args.no_auth else (args.token or demo_secret("HIG_NATIONAL_TOKEN", "national-token")
                                         or DEV_TOKEN),
        api_key_header=args.api_key_header,
        region_code=args.region,
        auto_advance_seconds=args.auto_advance,
        seed=args.seed,
        state_file=args.state_file,
        faults=faults,
        event_timeout_seconds=args.event_timeout,
        event_max_attempts=args.event_max_attempts,
        event_retry_initial_seconds=args.event_retry_initial,
        event_retry_max_seconds=args.event_retry_max,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = config_from(args)
    except (ValidationError, ValueError) as err:
        print(f"national simulator: invalid options:\n{err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s %(message)s")
    build_server(config, host=args.host, port=args.port).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
