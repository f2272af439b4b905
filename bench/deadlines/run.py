"""Deadline risk from the store's due-day index, and what working the deadlines out again costs a status event.

1. N tickets stored as intake leaves them, a third with their limit ended, a third overdue, a third running
   later; then, alternating in rounds: the dashboard's risk read as it is now (the 50 most pressing by the
   due-day index, and the overdue and due-soon counts), the plain newest-50 search (baseline: the same store,
   no deadline condition), and the read the dashboard made before issue 16 (the newest 2,000 tickets read and
   classified, which missed any older ticket at risk). Median milliseconds per read.
2. In process: a signed ACCEPTED event applied to a complaint by the state machine alone (baseline), and by
   the state machine and then the deadlines worked out again from the ticket's history (what the status
   service does now). Median microseconds per event.

Run from the repository root:  .venv/bin/python -m bench.deadlines.run [--n 20000] [--store both] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.common import payloads
from bench.common.fill import TicketMaker, open_bench_store, settings_for, ticket_maker
from bench.common.procs import gateway_env, machine_load, redis_db
from bench.common.report import machine, write_section
from contracts.status import StatusEvent
from contracts.ticket import Ticket
from gateway.runtime import load_components
from gateway.store.base import Store, TicketQuery
from gateway.tickets.deadlines import CHINA_TZ, RuleBook, WorkingDayCalendar, with_deadlines
from gateway.tickets.deadlines import compute as deadline_compute
from gateway.tickets.lifecycle import apply_status_event
from gateway.tickets.risk import deadline_risk, risk_window

TITLE = "Deadline risk and the lifecycle"
COMMAND = ".venv/bin/python -m bench.deadlines.run --store both --write-docs"
OLD_WINDOW = 2000


def with_state(ticket: Ticket, i: int, today: date) -> Ticket:
    """Ticket i's acceptance limit: ended (met), running and overdue, or running and due in 20 days."""
    [limit] = ticket.routing.deadlines
    state = i % 3
    if state == 0:
        limit = limit.model_copy(update={"outcome": "met", "ended_on": limit.starts_on})
    else:
        limit = limit.model_copy(update={"due_on": today - timedelta(days=1 + i % 40) if state == 1
                                         else today + timedelta(days=20)})
    return ticket.model_copy(update={"routing": ticket.routing.model_copy(update={"deadlines": [limit]})})


async def fill(store: Store, maker: TicketMaker, n: int, today: date) -> None:
    queue = iter(range(n))

    async def worker() -> None:
        for i in queue:
            ticket, raw, outbox = maker.intake_args(i)
            await store.intake(with_state(ticket, i, today), raw, "application/json", outbox)

    await asyncio.gather(*(worker() for _ in range(32)))


async def timed(read: Callable[[], Awaitable[object]]) -> float:
    began = time.perf_counter()
    await read()
    return (time.perf_counter() - began) * 1000


async def measure_store(store: Store, calendar: WorkingDayCalendar, rounds: int) -> dict[str, float]:
    today = datetime.now(CHINA_TZ).date()
    soon_until = risk_window(today, calendar)
    now = datetime.now(UTC)

    async def risk_now() -> object:
        return (await store.search_tickets(TicketQuery(due_before=soon_until, order="due", limit=50)),
                await store.count_tickets(TicketQuery(due_before=today)),
                await store.count_tickets(TicketQuery(due_from=today, due_before=soon_until)))

    async def plain() -> object:
        return await store.search_tickets(TicketQuery(limit=50))

    async def risk_before() -> object:
        return [deadline_risk(t, now, calendar) for t in await store.search_tickets(TicketQuery(limit=OLD_WINDOW))]

    times: dict[str, list[float]] = {"risk": [], "plain": [], "before": []}
    for _ in range(rounds):
        times["risk"].append(await timed(risk_now))
        times["plain"].append(await timed(plain))
        times["before"].append(await timed(risk_before))
    return {name: statistics.median(values) for name, values in times.items()}


def one_store(kind: str, n: int, rounds: int, work: Path, redis_url: str) -> dict[str, float]:
    genv = gateway_env(work / kind, store=kind, redis_url=redis_url, log_level="WARNING")
    settings = settings_for(genv.env)
    maker = ticket_maker(settings, payloads.run_tag())
    calendar = load_components(settings).calendar

    async def run() -> dict[str, float]:
        store = open_bench_store(settings)
        await store.open()
        try:
            await fill(store, maker, n, datetime.now(CHINA_TZ).date())
            return await measure_store(store, calendar, rounds)
        finally:
            await store.close()

    return asyncio.run(run())


class DayByDayCalendar(WorkingDayCalendar):
    """The calendar as it counted before: working days added by walking the calendar one day at a time."""

    def add_working_days(self, start: date, n: int) -> date:
        day = start
        while n:
            day += timedelta(days=1)
            if self.is_working_day(day):
                n -= 1
        return day


def measure_status(template: Ticket, rules: RuleBook, calendar: WorkingDayCalendar, n: int) -> dict[str, float]:
    """Medians of 5 rounds of `n` events, µs per event, for each way (alternating within each round): the state
    machine alone (baseline); with the deadlines worked out again as the status service does ("with deadlines":
    every event here starts from the same day, so the counted limits are remembered); the same with nothing
    remembered ("cold": each event counts its limits afresh); and as before issue 16's performance pass ("day by
    day": nothing remembered, working days walked one day at a time)."""
    received = template.source.source_received_at
    event = StatusEvent(event_id="evt-1", ticket_id=template.ticket_id, sequence=1, at=received + timedelta(days=2),
                        status="ACCEPTED", org="凯里市市场监督管理局")
    walking = DayByDayCalendar()

    def state_machine() -> None:
        apply_status_event(template, event)

    def remembered() -> None:
        with_deadlines(apply_status_event(template, event).ticket, rules, calendar)

    def cold() -> None:
        deadline_compute._counted.cache_clear()
        with_deadlines(apply_status_event(template, event).ticket, rules, calendar)

    def day_by_day() -> None:
        deadline_compute._counted.cache_clear()
        with_deadlines(apply_status_event(template, event).ticket, rules, walking)

    ways = {"state machine": state_machine, "with deadlines": remembered, "cold": cold, "day by day": day_by_day}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(5):
        for name, way in ways.items():
            began = time.perf_counter()
            for _ in range(n):
                way()
            times[name].append((time.perf_counter() - began) / n * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="tickets stored")
    parser.add_argument("--rounds", type=int, default=30, help="reads of each kind, alternating")
    parser.add_argument("--events", type=int, default=2000, help="status events per in-process round")
    parser.add_argument("--store", choices=("sqlite", "redis", "both", "none"), default="both",
                        help="none: the status events only (printed, not written to the docs)")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/13",
                        help="a database of its own: it must be empty, and is emptied afterwards")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load_start = machine_load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-deadlines-") as tmp:
        for kind in {"both": ("sqlite", "redis"), "none": ()}.get(args.store, (args.store,)):
            if kind == "redis":
                with redis_db(args.redis_url):
                    ms = one_store(kind, args.n, args.rounds, Path(tmp), args.redis_url)
            else:
                ms = one_store(kind, args.n, args.rounds, Path(tmp), args.redis_url)
            rows.append(f"| {kind} | {args.n:,} | {ms['risk']:.1f} | {ms['plain']:.1f} | "
                        f"{ms['risk'] / ms['plain']:.2f} | {ms['before']:.1f} | {ms['risk'] / ms['before']:.2f} |")
            print(rows[-1], flush=True)
        settings = settings_for(gateway_env(Path(tmp) / "status", log_level="WARNING").env)
        components = load_components(settings)
        template = ticket_maker(settings, "status").ticket(0)
    us = measure_status(template, components.rules, components.calendar, args.events)
    base = us["state machine"]
    status_row = (f"| {base:.0f} | {us['with deadlines']:.0f} ({us['with deadlines'] / base:.2f}) | "
                  f"{us['cold']:.0f} ({us['cold'] / base:.2f}) | "
                  f"{us['day by day']:.0f} ({us['day by day'] / base:.2f}) | "
                  f"{us['with deadlines'] / us['day by day']:.2f} / {us['cold'] / us['day by day']:.2f} |")
    print(status_row)
    risk_table = "\n".join([
        "| store | tickets | risk read now (ms) | newest-50 search (ms) | ratio to newest-50 | "
        f"newest-{OLD_WINDOW:,} read and classified, before (ms) | ratio to before |",
        "|---|---:|---:|---:|---:|---:|---:|", *rows])
    status_table = "\n".join([
        "| state machine alone (µs/event, baseline) | with deadlines worked out again (µs, ratio) | "
        "the same, nothing remembered (µs, ratio) | before: working days walked day by day (µs, ratio) | "
        "ratio to before (remembered / cold) |",
        "|---:|---:|---:|---:|---:|", status_row])
    print(risk_table)
    if args.write_docs and args.store != "none":
        write_section(TITLE, f"""## {TITLE}

`bench/deadlines/run.py`. Deadline risk (the dashboard's 时限预警 and its cards, `GET /api/v1/tickets?deadline=…`)
is read from each store's index of the earliest running due day (SQLite: `tickets.next_due_on`; Redis: the
`by-due` sorted set). {args.n:,} tickets stored as intake leaves them, a third with their limit ended, a third
overdue, a third due in 20 days; medians of {args.rounds} alternating reads of each kind. "Risk read now" is
what the dashboard does on every refresh: the 50 most pressing tickets at risk and the two counts (of all
{args.n * 2 // 3:,} running, {args.n // 3:,} overdue). The baseline is the plain newest-50 search on the same
store; "before" is the read the dashboard made before issue 16 (the newest {OLD_WINDOW:,} tickets read and
classified, cached 30 s, blind to any older ticket at risk).

{risk_table}

A status event now also works the ticket's deadlines out again from its whole history (in process, the city
fixture's complaint, an ACCEPTED event that ends acceptance and starts mediation; medians of 5 rounds of
{args.events:,} events):

{status_table}

- Counting working days is a bisect in each year's working-day ordinals (`WorkingDayCalendar.working_ordinals`,
  worked out once per year a calendar consults), and a limit counted from a start day is remembered per calendar
  (`compute._counted`: the due day and the basis texts; every event here starts from the same day, so "with
  deadlines" always finds it, "nothing remembered" never does). "Before" is the same run as the code was until
  issue 16's performance pass: nothing remembered and the calendar walked one day at a time (45 working days for
  mediation: about 63 days asked one by one). What is left is building the deadlines and copying the ticket
  (pydantic `model_copy`). A status event through the gateway also verifies its signature and writes the ticket
  with its outbox durably, which this in-process figure leaves out.
- Machine: {machine(load_start, machine_load())}.

Reproduce: `{COMMAND}` (`--n`, `--rounds`).
""")


if __name__ == "__main__":
    main()
