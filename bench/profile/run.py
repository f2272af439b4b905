"""Profile a gateway process under the intake load of bench/rest_intake or bench/soap_intake with py-spy.

Samples only while a thread holds the GIL (`--gil`), so time spent waiting for a core on a loaded
machine is not charged to the code. Writes a flame graph (SVG) or speedscope JSON; `--format raw`
gives collapsed stacks to grep.

Run from the repository root (py-spy from requirements.txt):
  .venv/bin/python -m bench.profile.run --kind rest --seconds 15 --out /tmp/rest.svg
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import payloads
from bench.common.intake import rest_factories, soap_factories
from bench.common.load import closed_loop
from bench.common.procs import gateway_env, redis_db, start_gateway


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("rest", "soap"), default="rest")
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--format", choices=("flamegraph", "speedscope", "raw"), default="flamegraph")
    parser.add_argument("--out", type=Path, default=Path("gateway-profile.svg"))
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install -r requirements.txt")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, \
            redis_db(args.redis_url) if args.store == "redis" else contextlib.nullcontext():
        work = Path(tmp)
        genv = gateway_env(work / "data", store=args.store, redis_url=args.redis_url)
        tag = payloads.run_tag()
        if args.kind == "rest":
            make, _ = rest_factories(genv.env["PARTNER_CITY12345_API_KEY"], tag)
        else:
            make, _ = soap_factories(genv.env["PARTNER_PROVINCE12345_INBOUND_PASSWORD"], tag)
        gateway = start_gateway(genv, work)
        try:
            _, index = asyncio.run(closed_loop("127.0.0.1", gateway.port, make, connections=args.connections,
                                               seconds=1.0))
            recorder = subprocess.Popen([spy, "record", "--pid", str(gateway.pid), "--duration", str(args.seconds),
                                         "--rate", "200", "--gil", "--nonblocking", "--format", args.format,
                                         "--output", str(args.out)])
            result, _ = asyncio.run(closed_loop("127.0.0.1", gateway.port, make, connections=args.connections,
                                                seconds=args.seconds, start_index=index))
            recorder.wait()
            print(f"{args.kind} intake under profile: {result.rate:,.0f} req/s, p99 {result.p99_ms:.0f} ms; "
                  f"profile in {args.out}")
        finally:
            gateway.stop()


if __name__ == "__main__":
    main()
