"""Reading a partner's SOAP reply: once, as the soap adapter reads it now (adapters.wire.replies.read_reply), against
twice, as it read it before (zeep's own reading into objects, then the hardened reader again for the records).

The replies are the provincial 12345 simulator's real answers to GetPendingOrders (a page of work orders, UTF-8 and
GBK) and to ReplyOrder, fetched once through zeep; then each reading runs on the same bytes in this process, in
alternating rounds, and the CPU time per reply is compared.

Run from the repository root:  .venv/bin/python -m bench.soap_reply.run [--n 300] [--rounds 5] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import zeep
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport

from adapters.soap import zeep_settings
from adapters.wire.replies import read_reply
from adapters.wire.xml import parse_xml
from bench.common.procs import machine_load
from bench.common.report import machine, write_section
from simulators.province12345 import run_in_thread

TITLE = "Reading a partner's SOAP reply"
COMMAND = ".venv/bin/python -m bench.soap_reply.run --write-docs"


@dataclass(frozen=True)
class Captured:
    name: str
    operation: str
    response: httpx.Response


async def _capture(wsdl_url: str) -> tuple[list[Captured], Any]:
    http = httpx.AsyncClient(timeout=10, trust_env=False)

    def build() -> tuple[Any, Any]:
        with httpx.Client(timeout=10, trust_env=False) as loader:
            client = zeep.AsyncClient(wsdl_url, transport=AsyncTransport(client=http, wsdl_client=loader),
                                      settings=zeep_settings(raw_response=True))
        (service,) = client.wsdl.services.values()
        (port,) = service.ports.values()
        return client, AsyncServiceProxy(client, port.binding, address=port.binding_options["address"])

    client, proxy = await asyncio.to_thread(build)
    page = await proxy.GetPendingOrders(since="0", max=10)
    answer = await proxy.ReplyOrder(infoid="GZ12345-20240315-000123", replytype="回单", replycontent="已受理",
                                    replyorg="凯里市市场监督管理局", isend="0")
    await http.aclose()
    return [Captured("GetPendingOrders, 10 orders", "GetPendingOrders", page),
            Captured("ReplyOrder", "ReplyOrder", answer)], client


def capture(charset: str) -> tuple[list[Captured], Any]:
    with run_in_thread(response_charset=charset) as province:
        return asyncio.run(_capture(province.wsdl_url))


def read_twice(client: Any, captured: Captured) -> Callable[[], object]:
    """The reading before: zeep's process_reply (what AsyncServiceProxy ran on every reply), then parse_xml."""
    binding = next(iter(client.wsdl.bindings.values()))
    operation = binding.get(captured.operation)
    response = captured.response
    content_type = response.headers.get("Content-Type")

    def run() -> object:
        binding.process_reply(client, operation, response)  # zeep's reading, whose objects went unused
        return parse_xml(response.content, content_type)  # the adapter's own

    return run


def read_once(captured: Captured) -> Callable[[], object]:
    response = captured.response
    content_type = response.headers.get("Content-Type")
    return lambda: read_reply(response.status_code, response.content, content_type)


def cpu_per_call(fn: Callable[[], object], n: int) -> float:
    started = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - started) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load_start = machine_load()
    rows = []
    for charset in ("UTF-8", "GBK"):
        replies, client = capture(charset)
        for captured in replies:
            twice, once = read_twice(client, captured), read_once(captured)
            twice(), once()  # warm: zeep compiles its types on first use
            before, after = [], []
            for _ in range(args.rounds):
                before.append(cpu_per_call(twice, args.n))
                after.append(cpu_per_call(once, args.n))
            ratios = [b / a for b, a in zip(before, after, strict=True)]
            rows.append(f"| {captured.name} | {charset} | {len(captured.response.content):,} | "
                        f"{statistics.median(before) * 1e3:.3f} ms | {statistics.median(after) * 1e3:.3f} ms | "
                        f"**{statistics.median(ratios):.1f}×** ({min(ratios):.1f}–{max(ratios):.1f}) |")
    table = "\n".join(["| reply | charset | bytes | read twice (zeep, then the adapter) | read once | "
                       "CPU saved: twice / once (per round) |", "|---|---|---:|---:|---:|---:|", *rows])
    print(table)
    if args.write_docs:
        write_section(TITLE, f"""## {TITLE}

`bench/soap_reply/run.py`: the soap adapter (polling, acknowledging, writing back) reads each reply once with the
hardened reader (`adapters/wire/replies.py`); before, zeep read it into objects the adapter did not use, then the
adapter parsed the same bytes again. The replies are the provincial 12345 simulator's own answers, fetched once;
both readings then run on the same bytes in this process, {args.rounds} alternating rounds of {args.n} readings
each, CPU time per reading (medians).

{table}

Machine: {machine(load_start, machine_load())}.

Reproduce: `{COMMAND}`.
""")


if __name__ == "__main__":
    main()
