"""Ops on the command line: `tickets`, `deliveries`, `quarantine` and `ops` sub-commands, on the configured store."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
import unicodedata
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
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
    """Open the configured store (no workers, no pollers, no alert monitor), run `work(service, user)`, close. A
    refusal of the ops service ends the command as `_fail` says."""
    from gateway.ops.access import Authenticator, OpsUser, Role
    from gateway.ops.errors import OpsError
    from gateway.ops.service import OpsService
    from gateway.runtime import Runtime

    settings = _settings(config)

    async def main() -> T:
        runtime = Runtime.build(settings)
        await runtime.start(workers=False, pollers=False, alerts=False)
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


def _width(text: str) -> int:
    """The columns a terminal gives `text`: two for a wide (Chinese) character, one for any other."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _table(rows: Sequence[Sequence[str]], *, header: Sequence[str] | None = None, indent: str = "") -> None:
    """Print rows as a table: first the header row naming each column (`ticket_id 工单编号`: its English name, then
    its Chinese one), then a line per row, each column as wide on screen as its widest cell."""
    lines = [header, *rows] if header is not None else list(rows)
    if not lines:
        return
    widths = [max(_width(cell) for cell in column) for column in zip(*lines, strict=True)]
    for line in lines:
        typer.echo(indent + "  ".join(cell + " " * (width - _width(cell))
                                      for cell, width in zip(line, widths, strict=True)).rstrip())


def _labelled(code: str | None, labels: Mapping[str, str]) -> str:
    """A code with its Chinese label beside it (`dead 死信`); "-" for none."""
    if not code:
        return "-"
    return f"{code} {labels[code]}" if code in labels else code


def _china(at: Any) -> str:
    """A time as China reads it (+08:00), whoever wrote it."""
    from gateway.tickets.deadlines import CHINA_TZ

    return str(at.astimezone(CHINA_TZ).isoformat(timespec="seconds"))


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
    from gateway.ops.views import RISK_LABELS, STATE_LABELS, STATUS_LABELS

    t = detail.ticket
    facts = [("ticket_id 工单编号", t["ticket_id"]),
             ("source 来源", f"{t['source']['source_system']} {t['source']['source_ticket_no']}"),
             ("status 状态", _labelled(t["lifecycle"]["status"], STATUS_LABELS)),
             ("national_no 全国登记号", t.get("national_registration_no") or "-"),
             ("handler 承办机构", t["routing"].get("handler_org_name") or "-")]
    if detail.deadline_risk:
        facts.append(("deadline 时限", f"{_labelled(detail.deadline_risk, RISK_LABELS)}（{detail.due_on} 到期）"))
    facts.append(("echo 来源回音", _echo_line(detail.echo)))
    _table(facts)
    typer.echo("deliveries 投递:")
    _table([(d.delivery.delivery_id, d.delivery.destination, _labelled(d.delivery.state.value, STATE_LABELS),
             str(d.delivery.attempts), _last(d.delivery)) for d in detail.deliveries],
           header=("delivery_id 投递编号", "destination 目的地", "state 状态", "attempts 次数", "last 最近结果"),
           indent="  ")
    typer.echo("timeline 时间线:")
    _table([(_china(e.at), e.label + (f"（{e.detail}）" if e.detail else "")) for e in detail.timeline],
           header=("at 时间", "event 事件"), indent="  ")


def _last(receipt: Any) -> str:
    """A delivery's last result: the HTTP status or the error class of its last attempt."""
    return str(receipt.last_status_code or receipt.last_error_class or "-")


def _echo_line(echo: Any) -> str:
    """What the partner has heard of the ticket (the sender's echo), on one line in Chinese."""
    from gateway.ops.views import STATE_LABELS, STATUS_LABELS

    if echo is None:
        return "尚无状态回写（来源系统无回调，或尚无状态变化）"
    line = (f"全国状态 {_labelled(echo.latest_status.value, STATUS_LABELS)}；来源系统已收到 "
            f"{_labelled(echo.heard_status.value, STATUS_LABELS) if echo.heard_status else '尚无'}")
    if echo.behind_since is None:
        return line + "；已同步"
    line += f"；自 {_china(echo.behind_since)} 起未获回音"
    if echo.waiting is not None:
        w = echo.waiting
        line += f"；待送回调 {w.delivery_id}：{_labelled(w.state.value, STATE_LABELS)}，已尝试 {w.attempts} 次，" \
                f"最近结果 {_last(w)}"
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
    from gateway.ops.views import STATE_LABELS, STATUS_LABELS

    rows = []
    for b in found:
        e, w = b.echo, b.echo.waiting
        rows.append((b.ticket_id, b.adapter_id or "-", b.source_ticket_no or "-",
                     _labelled(e.latest_status.value, STATUS_LABELS),
                     _labelled(e.heard_status.value, STATUS_LABELS) if e.heard_status else "尚无",
                     _china(e.behind_since) if e.behind_since else "-",
                     f"{w.delivery_id} {_labelled(w.state.value, STATE_LABELS)}" if w else "-",
                     str(w.attempts) if w else "-", _last(w) if w else "-"))
    _table(rows, header=("ticket_id 工单编号", "adapter 对接系统", "source_no 来源工单号", "national 全国状态",
                         "heard 来源已收到", "behind_since 未获回音起始", "callback 待送回调", "attempts 次数",
                         "last 最近结果"))
    typer.echo(f"{len(found)} ticket(s) 共 {len(found)} 件")


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
    from gateway.ops.views import RISK_LABELS, STATUS_LABELS

    _table([(s.ticket_id, s.adapter_id, s.source_ticket_no, _labelled(s.status.value, STATUS_LABELS),
             _labelled(s.deadline_risk, RISK_LABELS)) for s in found],
           header=("ticket_id 工单编号", "adapter 对接系统", "source_no 来源工单号", "status 状态", "deadline 时限"))
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

    _table([(r.delivery_id, r.destination, _labelled(r.state.value, STATE_LABELS), r.ticket_id, str(r.attempts),
             _last(r)) for r in found],
           header=("delivery_id 投递编号", "destination 目的地", "state 状态", "ticket 工单", "attempts 次数",
                   "last 最近结果"))
    typer.echo(f"{len(found)} deliver{'y' if len(found) == 1 else 'ies'} 共 {len(found)} 条")


@deliveries_cli.command("replay")
def deliveries_replay(
    config: ConfigOption = None,
    ids: Annotated[list[str] | None, typer.Option("--id", help="a dead or retrying delivery's id (repeatable)")] = None,
    retrying: Annotated[bool, typer.Option("--retrying", help="by filter: retrying deliveries (retry now), "
                                                               "not dead letters")] = False,
    destination: Annotated[str | None, typer.Option(help="only this lane")] = None,
    error_class: Annotated[str | None, typer.Option(
        help="only deliveries (dead ones, or retrying ones with --retrying) whose last error was this")] = None,
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
    if not ids and not by_filter and retrying:
        # Every retrying delivery on every lane due at once would send again to receivers still failing, all
        # together; retry now follows the fix of one partner's fault, so it names that partner's lane.
        typer.echo("--retrying 需要同时给出筛选条件，以免所有线路上重试中的投递一齐重发：用 --destination 指定已修复的"
                   "线路（如 callback:<对接系统>），或用 --ticket、--error-class、--since、--until 缩小范围；"
                   "也可用 --id 逐个指定\n"
                   "--retrying needs a filter as well, so that not every retrying delivery on every lane goes at once: "
                   "name the lane whose receiver was fixed with --destination (e.g. callback:<adapter>), or narrow it "
                   "with --ticket, --error-class, --since or --until; or give --id", err=True)
        raise typer.Exit(2)
    if not ids and not by_filter:
        typer.echo("请给出 --id，或筛选条件（--destination、--error-class、--ticket、--since、--until；重试中的投递加 "
                   "--retrying）\ngive --id, or a filter (--destination, --error-class, --ticket, --since, --until; "
                   "add --retrying for retrying deliveries)", err=True)
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
            assert flt is not None  # nothing to replay comes of a filter: named ids are at least one
            return {"matched": 0, "replayed": 0, "dry_run": dry_run, "destinations": {}, "not_replayed": {},
                    **await _nothing_matched(service, flt)}
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


# A replay filter's state that matched nothing: (saying so, the other state's deliveries, what to do), each in Chinese
# and in English.
_NOTHING_MATCHED: dict[str, tuple[tuple[str, str], tuple[str, str], tuple[str, str]]] = {
    "dead": (("没有死信符合条件", "no dead letter matches"), ("重试中的投递", "retrying deliveries"),
             ("加 --retrying 立即重试", "add --retrying to retry them now")),
    "retrying": (("没有重试中的投递符合条件", "no retrying delivery matches"), ("死信", "dead letters"),
                 ("去掉 --retrying 即可重新投递", "drop --retrying to replay them")),
}


async def _nothing_matched(service: Any, flt: Any) -> dict[str, str]:
    """A hint for a filter that matched nothing: whether deliveries in the other state (retrying ones for a
    dead-letter filter, dead letters for a --retrying one) match it, and what to do then."""
    (none_zh, none_en), (other_zh, other_en), (do_zh, do_en) = _NOTHING_MATCHED[flt.state]
    other = "dead" if flt.state == "retrying" else "retrying"
    count = len(await service.store.list_deliveries(flt.model_copy(update={"state": other}).filter()))
    if count:
        return {"hint": f"{none_zh}；有 {count} 个{other_zh}符合：{do_zh}",
                "hint_en": f"{none_en}; {count} {other_en} do: {do_en}"}
    return {"hint": f"{none_zh}，也没有{other_zh}符合", "hint_en": f"{none_en}, nor do any {other_en}"}


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
    _table([(q.quarantine_id, q.adapter_id, _china(q.received_at), f"×{q.times_seen}", _china(q.last_seen_at),
             "；".join(f"{e['message']} ({e['field']} {e['rule']})" for e in q.errors)) for q in found],
           header=("quarantine_id 隔离编号", "adapter 对接系统", "received 首次接收", "seen 次数", "last 最近一次",
                   "problems 问题"))
    typer.echo(f"{len(found)} payload(s) 共 {len(found)} 件")


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
