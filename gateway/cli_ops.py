"""Ops on the command line: `tickets`, `deliveries`, `quarantine` and `ops` sub-commands, on the configured store."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from gateway.config import ConfigError, GatewaySettings, load_settings

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

tickets_cli = typer.Typer(help="Find tickets and show one with its deliveries and timeline.", add_completion=False,
                          no_args_is_help=True)
deliveries_cli = typer.Typer(help="List and replay deliveries (dead letters).", add_completion=False,
                             no_args_is_help=True)
quarantine_cli = typer.Typer(help="List quarantined payloads and re-map them with the current specs.",
                             add_completion=False, no_args_is_help=True)
ops_cli = typer.Typer(help="Ops users: token hashes for config/ops-users.yaml.", add_completion=False,
                      no_args_is_help=True)

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="gateway.yaml (default: config/gateway.yaml)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON instead of text")]
REPLAY_BATCH = 100


def _settings(config: Path | None) -> GatewaySettings:
    try:
        return load_settings(config)
    except ConfigError as err:
        typer.echo(f"configuration error:\n{err}", err=True)
        raise typer.Exit(2) from err


def _run(config: Path | None, work: Callable[[Any, Any], Awaitable[T]]) -> T:
    """Open the configured store (no workers, no pollers), run `work(service, user)`, close. A refusal of the ops
    service ends the command as `_fail` says."""
    from gateway.ops.access import Authenticator, OpsUser, Role
    from gateway.ops.errors import OpsError
    from gateway.ops.service import OpsService
    from gateway.runtime import Runtime

    settings = _settings(config)

    async def main() -> T:
        runtime = Runtime.build(settings)
        await runtime.start(workers=False, pollers=False)
        try:
            service = OpsService(runtime, Authenticator([]), users_file=settings.resolve("ops-users.yaml"))
            # Whoever runs this can read the store itself; what they change is still audited under their name.
            user = OpsUser(id=f"cli:{getpass.getuser()}", role=Role.ADMIN, name="command line")
            return await work(service, user)
        finally:
            await runtime.stop()

    try:
        return asyncio.run(main())
    except (OpsError, ValidationError) as err:
        raise _fail(err) from err


def _options(model: type[M], given: dict[str, Any]) -> M:
    """The command's options as the ops API's model of them (an option not given keeps the model's default)."""
    try:
        return model.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as err:
        raise _fail(err) from err


def _fail(err: Exception) -> typer.Exit:
    from gateway.ops.errors import OpsError

    if isinstance(err, OpsError):
        typer.echo(json.dumps(err.body(), ensure_ascii=False), err=True)
        return typer.Exit(1)
    if isinstance(err, ValidationError):
        for e in err.errors(include_url=False):
            typer.echo(f"{'.'.join(str(p) for p in e['loc']) or '(options)'}: {e['msg']}", err=True)
        return typer.Exit(2)
    raise err


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=str))


# -- tickets ---------------------------------------------------------------------------------------------

@tickets_cli.command("show")
def tickets_show(reference: Annotated[str, typer.Argument(
                     help="the gateway's ticket id, the partner's ticket number or the national registration number")],
                 config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """One ticket: its facts, deliveries with attempts, and timeline."""

    async def work(service: Any, user: Any) -> Any:
        return await service.ticket_detail(await service.ticket_by_reference(reference), user)

    detail = _run(config, work)
    if as_json:
        _echo_json(detail.model_dump(mode="json"))
        return
    from gateway.tickets.deadlines import CHINA_TZ as china

    t = detail.ticket
    typer.echo(f"ticket {t['ticket_id']}  {t['source']['source_system']} {t['source']['source_ticket_no']}  "
               f"status {t['lifecycle']['status']}")
    typer.echo(f"  national no   {t.get('national_registration_no') or '-'}")
    typer.echo(f"  handler       {t['routing'].get('handler_org_name') or '-'}")
    if detail.deadline_risk:
        typer.echo(f"  deadline      {detail.deadline_risk} (due {detail.due_on})")
    typer.echo(f"  sender's echo {_echo_line(detail.echo)}")
    typer.echo("deliveries:")
    for d in detail.deliveries:
        r = d.delivery
        typer.echo(f"  {r.delivery_id}  {r.destination:<28} {r.state.value:<10} attempts {r.attempts}  "
                   f"last {r.last_status_code or r.last_error_class or '-'}")
    typer.echo("timeline:")
    for e in detail.timeline:
        at = e.at.astimezone(china).isoformat(timespec="seconds")  # China time throughout, whoever wrote it
        typer.echo(f"  {at}  {e.label}" + (f"  ({e.detail})" if e.detail else ""))


def _echo_line(echo: Any) -> str:
    """What the partner has heard of the ticket, on one line."""
    if echo is None:
        return "- (no status callback yet)"
    heard = echo.heard_status.value if echo.heard_status else "nothing yet"
    line = f"national {echo.latest_status.value}, partner heard {heard}"
    if echo.behind_since is None:
        return line + " (caught up)"
    line += f", behind since {echo.behind_since.isoformat(timespec='seconds')}"
    if echo.waiting is not None:
        w = echo.waiting
        line += f"; callback {w.delivery_id} {w.state.value}, {w.attempts} attempt(s), last " \
                f"{w.last_status_code or w.last_error_class or '-'}"
    return line


@tickets_cli.command("behind")
def tickets_behind(config: ConfigOption = None,
                   limit: Annotated[int, typer.Option(help="at most this many, longest behind first")] = 100,
                   as_json: JsonOption = False) -> None:
    """Tickets whose partner has not heard their latest status for longer than echo.behind_after_seconds."""
    from gateway.ops.schemas import EchoSearch

    search = _options(EchoSearch, {"limit": limit})

    async def work(service: Any, user: Any) -> Any:
        return await service.behind(search, user)

    found = _run(config, work)
    if as_json:
        _echo_json([b.model_dump(mode="json") for b in found])
        return
    for b in found:
        typer.echo(f"{b.ticket_id}  {b.adapter_id or '-':<22} {b.source_ticket_no or '-':<24} {_echo_line(b.echo)}")
    typer.echo(f"{len(found)} ticket(s)")


@tickets_cli.command("find")
def tickets_find(
    config: ConfigOption = None,
    source_no: Annotated[str | None, typer.Option(help="the partner's ticket number")] = None,
    national_no: Annotated[str | None, typer.Option(help="the national registration number")] = None,
    phone: Annotated[str | None, typer.Option(help="the complainant's phone, in any written form")] = None,
    uscc: Annotated[str | None, typer.Option(help="the respondent's unified social credit code")] = None,
    respondent: Annotated[str | None, typer.Option(help="the respondent's name")] = None,
    status: Annotated[str | None, typer.Option(help="e.g. RECEIVED, ACCEPTED, CLOSED")] = None,
    adapter: Annotated[str | None, typer.Option(help="adapter id")] = None,
    deadline: Annotated[str | None, typer.Option(help="overdue, due_soon or at_risk")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 20,
    as_json: JsonOption = False,
) -> None:
    """Find tickets; every given option must match."""
    from gateway.ops.schemas import TicketSearch

    raw = {"source_ticket_no": source_no, "national_registration_no": national_no, "complainant_phone": phone,
           "respondent_uscc": uscc, "respondent_name": respondent, "status": status, "adapter_id": adapter,
           "deadline": deadline, "limit": limit}
    search = _options(TicketSearch, raw)

    async def work(service: Any, user: Any) -> Any:
        return await service.search(search, user)

    found = _run(config, work)
    if as_json:
        _echo_json([s.model_dump(mode="json") for s in found])
        return
    typer.echo(f"{'ticket_id 工单编号':<28}  {'adapter 对接系统':<22} {'source_no 来源工单号':<28} "
               f"{'status 状态':<12} deadline 时限")
    for s in found:
        typer.echo(f"{s.ticket_id:<28}  {s.adapter_id:<22} {s.source_ticket_no:<28} {s.status.value:<12} "
                   f"{s.deadline_risk or ''}")
    typer.echo(f"{len(found)} ticket(s) 共 {len(found)} 件")


@tickets_cli.command("on-time")
def tickets_on_time(
    config: ConfigOption = None,
    since: Annotated[str | None, typer.Option(help="first day, 2024-09-01 (default: 29 days before --until)")] = None,
    until: Annotated[str | None, typer.Option(help="last day (default: today, China time)")] = None,
    as_json: JsonOption = False,
) -> None:
    """办理时效: the statutory time limits that ended in a span of days, met and missed, per handling organisation
    and per limit."""
    from gateway.ops.schemas import OnTimeSearch

    search = _options(OnTimeSearch, {"since": since or None, "until": until or None})

    async def work(service: Any, user: Any) -> Any:
        return await service.on_time(search)

    report = _run(config, work)
    if as_json:
        _echo_json(report.model_dump(mode="json"))
        return
    typer.echo(f"办理时效 {report.since} – {report.until}: met {report.met}, missed {report.missed}")
    for title, rows in (("per organisation", report.by_org), ("per limit", report.by_limit)):
        typer.echo(f"{title}:")
        for r in rows:
            typer.echo(f"  {r.label:<24} met {r.met:>6}  missed {r.missed:>6}  {r.percent:>7}")


# -- deliveries ------------------------------------------------------------------------------------------

@deliveries_cli.command("list")
def deliveries_list(
    config: ConfigOption = None,
    state: Annotated[str | None, typer.Option(help="pending, in_flight, retrying, delivered or dead")] = "dead",
    destination: Annotated[str | None, typer.Option(help="lane name, e.g. national or callback:<adapter>")] = None,
    error_class: Annotated[str | None, typer.Option(help="e.g. http_503, timeout, connect_error")] = None,
    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Deliveries by state (dead letters by default), oldest first."""
    from gateway.ops.schemas import DeliverySearch

    search = _options(DeliverySearch, {"state": state, "destination": destination, "error_class": error_class,
                                       "limit": limit})

    async def work(service: Any, user: Any) -> Any:
        return await service.deliveries(search, user)

    found = _run(config, work)
    if as_json:
        _echo_json([r.model_dump(mode="json") for r in found])
        return
    from gateway.ops.views import STATE_LABELS

    typer.echo(f"{'delivery_id 投递编号':<28}  {'destination 目的地':<28} {'state 状态':<14} ticket 工单  "
               "attempts 次数  last 最近结果")
    for r in found:
        state = f"{r.state.value} {STATE_LABELS.get(r.state.value, '')}"
        typer.echo(f"{r.delivery_id:<28}  {r.destination:<28} {state:<14} ticket {r.ticket_id}  "
                   f"attempts {r.attempts}  last {r.last_status_code or r.last_error_class or '-'}")
    typer.echo(f"{len(found)} deliver{'y' if len(found) == 1 else 'ies'}")


@deliveries_cli.command("replay")
def deliveries_replay(
    config: ConfigOption = None,
    ids: Annotated[list[str] | None, typer.Option("--id", help="a dead or retrying delivery's id (repeatable)")] = None,
    retrying: Annotated[bool, typer.Option("--retrying", help="by filter: retrying deliveries (retry now), "
                                                               "not dead letters")] = False,
    destination: Annotated[str | None, typer.Option(help="only this lane")] = None,
    error_class: Annotated[str | None, typer.Option(help="only dead letters whose last error was this")] = None,
    ticket: Annotated[str | None, typer.Option(help="only this ticket's deliveries")] = None,
    since: Annotated[str | None, typer.Option(help="created at or after (2024-06-11 or ISO time)")] = None,
    until: Annotated[str | None, typer.Option(help="created before")] = None,
    limit: Annotated[int, typer.Option(help="at most this many by filter")] = 1000,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="only list what would be replayed")] = False,
) -> None:
    """Put dead deliveries back on their lanes and make retrying ones due now (retry now), by id or by filter, in
    batches with progress; ends with a summary that explains each delivery not replayed."""
    from gateway.ops.schemas import ReplayFilter, ReplayRequest

    by_filter = any(v is not None for v in (destination, error_class, ticket, since, until))
    if not ids and not by_filter:
        typer.echo("give --id, or a filter (--destination, --error-class, --ticket, --since, --until)", err=True)
        raise typer.Exit(2)
    flt = _options(ReplayFilter, {
        "destination": destination, "error_class": error_class, "ticket_id": ticket, "since": since, "until": until,
        "limit": limit, "state": "retrying" if retrying else "dead"}) if by_filter else None
    if ids:
        _options(ReplayRequest, {"delivery_ids": list(ids)})  # checks the ids' form before opening the store

    async def work(service: Any, user: Any) -> dict[str, Any]:
        # The set is fixed first (a dry run of the filter); the replay then goes in batches, with progress.
        candidates = list(ids) if ids else (await service.replay(ReplayRequest(filter=flt, dry_run=True), user)
                                            ).delivery_ids
        done: list[str] = []
        left: dict[str, dict[str, str]] = {}
        destinations: Counter[str] = Counter()
        if not candidates:
            return {"matched": 0, "replayed": 0, "dry_run": dry_run, "destinations": {}, "not_replayed": {}}
        with typer.progressbar(length=len(candidates), label="replaying" if not dry_run else "checking",
                               file=sys.stderr) as bar:
            for start in range(0, len(candidates), REPLAY_BATCH):
                batch = candidates[start:start + REPLAY_BATCH]
                result = await service.replay(ReplayRequest(delivery_ids=batch, dry_run=dry_run), user)
                done += result.delivery_ids
                left.update({n.delivery_id: {"state": n.state.value, "reason": n.reason, "message": n.message}
                             for n in result.not_replayed})
                for did in result.delivery_ids:
                    receipt = await service.store.get_delivery(did)
                    if receipt is not None:
                        destinations[receipt.destination] += 1
                bar.update(len(batch))
        return {"matched": len(candidates), "replayed" if not dry_run else "would_replay": len(done),
                "dry_run": dry_run, "destinations": dict(destinations), "not_replayed": left}

    summary = _run(config, work)
    typer.echo(json.dumps(summary, ensure_ascii=False))


@deliveries_cli.command("compact")
def deliveries_compact(
    older_than_days: Annotated[int, typer.Option("--older-than-days", min=1,
                                                 help="delivered deliveries created more than this many days ago")],
    config: ConfigOption = None,
) -> None:
    """Drop the bodies of old delivered deliveries (copies of what was sent), keeping their records and attempts.

    What `store.compact_delivered_after_days` does every hour when set; audited under your name."""
    async def work(service: Any, user: Any) -> dict[str, Any]:
        done = 0

        def progress(count: int) -> None:
            nonlocal done
            done += count
            typer.echo(f"compacted {done}", err=True)

        count = await service.compact(older_than_days, user, progress=progress)
        return {"compacted": count, "older_than_days": older_than_days}

    summary = _run(config, work)
    typer.echo(json.dumps(summary, ensure_ascii=False))


# -- quarantine ------------------------------------------------------------------------------------------

@quarantine_cli.command("list")
def quarantine_list(config: ConfigOption = None,
                    adapter: Annotated[str | None, typer.Option(help="only this adapter")] = None,
                    include_resolved: Annotated[bool, typer.Option(help="also those already re-mapped")] = False,
                    as_json: JsonOption = False) -> None:
    """Quarantined payloads, newest first, with the errors naming each field."""
    from gateway.ops.schemas import QuarantineSearch

    search = QuarantineSearch(adapter_id=adapter, include_resolved=include_resolved, limit=500)

    async def work(service: Any, user: Any) -> Any:
        return await service.quarantine(search, user)

    found = _run(config, work)
    if as_json:
        _echo_json([q.model_dump(mode="json") for q in found])
        return
    from gateway.tickets.deadlines import CHINA_TZ as china

    typer.echo(f"{'quarantine_id 隔离编号':<28}  {'adapter 对接系统':<22} {'received 首次接收':<25}  "
               "seen 次数 / last 最近一次  problems 问题")
    for q in found:
        rules = "；".join(f"{e['message']} ({e['field']} {e['rule']})" for e in q.errors)
        received = q.received_at.astimezone(china).isoformat(timespec="seconds")
        last = q.last_seen_at.astimezone(china).isoformat(timespec="seconds")
        typer.echo(f"{q.quarantine_id}  {q.adapter_id:<22} {received}  ×{q.times_seen} last {last}  {rules}")
    typer.echo(f"{len(found)} payload(s)")


@quarantine_cli.command("remap")
def quarantine_remap(
    quarantine_id: Annotated[str | None, typer.Argument(help="one quarantined payload's id")] = None,
    config: ConfigOption = None,
    adapter: Annotated[str | None, typer.Option(help="every open payload of this adapter")] = None,
) -> None:
    """Map quarantined payloads again with the current specs, through the jurisdiction screen as a push: stored ones
    (created, or held for review) are resolved, returned ones sent their 退单. Ends with a summary."""
    if (quarantine_id is None) == (adapter is None):
        typer.echo("give one quarantine id, or --adapter ID for all of an adapter's open payloads", err=True)
        raise typer.Exit(2)

    async def work(service: Any, user: Any) -> dict[str, Any]:
        from gateway.ops.schemas import QuarantineSearch

        if quarantine_id is not None:
            targets = [quarantine_id]
        else:
            items = await service.quarantine(QuarantineSearch(adapter_id=adapter, limit=500), user)
            targets = [q.quarantine_id for q in items]
        outcomes: Counter[str] = Counter()
        tickets: list[str] = []
        problems: dict[str, list[str]] = {}
        returned: dict[str, str] = {}
        with typer.progressbar(targets, label="re-mapping", file=sys.stderr) as bar:
            for qid in bar:
                result = await service.remap(qid, user)
                outcomes[result.outcome] += 1
                if result.ticket_id:
                    tickets.append(result.ticket_id)
                if result.outcome in ("returned", "already_returned"):  # 退单 sent to the partner: done, not a failure
                    returned[qid] = "; ".join(e["message"] for e in result.errors)
                elif result.errors:
                    problems[qid] = [f"{e['field']} ({e['rule']})" for e in result.errors]
        return {"payloads": len(targets), "outcomes": dict(outcomes), "ticket_ids": tickets, "still_failing": problems,
                "returned": returned}

    summary = _run(config, work)
    typer.echo(json.dumps(summary, ensure_ascii=False))
    if summary["outcomes"].get("still_rejected"):
        raise typer.Exit(1)


# -- ops users -------------------------------------------------------------------------------------------

@ops_cli.command("hash-token")
def hash_token_command(
    generate: Annotated[bool, typer.Option("--generate", help="make a new random token and print it too")] = False,
) -> None:
    """The scrypt hash of a token (read from stdin) for `token_hash:` in config/ops-users.yaml."""
    import secrets

    from gateway.ops.access import hash_token

    if generate:
        token = "hig_ops_" + secrets.token_urlsafe(32)
        typer.echo(f"token (hand it to the user; it is not kept anywhere): {token}", err=True)
    else:
        token = sys.stdin.readline().strip()
        if not token:
            typer.echo("give the token on stdin, or --generate", err=True)
            raise typer.Exit(2)
    typer.echo(hash_token(token))
