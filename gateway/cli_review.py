"""Jurisdiction reviews on the command line: `tickets review list | accept | return`, on the configured store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gateway.cli_ops import ConfigOption, JsonOption, _echo_json, _options, _run, _table

review_cli = typer.Typer(help="Tickets the jurisdiction screen held for review: list them, accept or return one.",
                         add_completion=False, no_args_is_help=True)
_SETTLED = {"accept": "受理", "return": "退回"}  # an operator's decision as the dashboard's buttons name it


@review_cli.command("list")
def review_list(config: ConfigOption = None, limit: Annotated[int, typer.Option(help="at most this many")] = 50,
                as_json: JsonOption = False) -> None:
    """Tickets waiting for a jurisdiction decision, newest first, with the rule and what it matched."""
    from gateway.ops.review import pending_reviews

    async def work(service: Any, user: Any) -> Any:
        return await pending_reviews(service, user, limit)

    found = _run(config, work)
    if as_json:
        _echo_json([v.model_dump(mode="json") for v in found])
        return
    _table([(view.ticket.ticket_id, view.ticket.adapter_id, view.ticket.source_ticket_no, view.jurisdiction.rule_id,
             ", ".join(f"{e.field}={e.matched}" for e in view.jurisdiction.evidence) or "-", view.ticket.title or "-",
             view.jurisdiction.reason or "-") for view in found],
           header=("ticket_id 工单编号", "adapter 对接系统", "source_no 来源工单号", "rule 规则", "evidence 依据",
                   "title 标题", "reason 理由"))
    typer.echo(f"{len(found)} ticket(s) waiting for review 待判定 共 {len(found)} 件")


def _settle(config: Any, ticket_id: str, raw: dict[str, Any], as_json: bool) -> None:
    from gateway.ops.review import settle
    from gateway.tickets.review import Settlement

    settlement = _options(Settlement, raw)

    async def work(service: Any, user: Any) -> Any:
        return await settle(service, ticket_id, settlement, user)

    result = _run(config, work)
    if as_json:
        _echo_json(result.model_dump(mode="json"))
        return
    count = len(result.delivery_ids)
    typer.echo(f"{result.ticket_id}: {result.outcome} {_SETTLED[result.outcome]}, status 状态 {result.status}, "
               f"{count} deliver{'y' if count == 1 else 'ies'} enqueued 已排队投递 {count} 件, "
               f"audit 审计记录 {result.audit_id}")


TicketArgument = Annotated[str, typer.Argument(help="the gateway's ticket id")]
ReasonOption = Annotated[str, typer.Option(help="why, in Chinese (a return's reason is sent to the partner)")]


@review_cli.command("accept")
def review_accept(ticket_id: TicketArgument, reason: ReasonOption, config: ConfigOption = None,
                  as_json: JsonOption = False) -> None:
    """Take a held ticket on: it is forwarded to the national platform and routed like any other."""
    _settle(config, ticket_id, {"outcome": "accept", "reason": reason}, as_json)


@review_cli.command("return")
def review_return(
    ticket_id: TicketArgument,
    reason: ReasonOption,
    authority: Annotated[str, typer.Option(help="the likely competent authority, e.g. 住房和城乡建设部门")],
    reason_code: Annotated[str, typer.Option(help="national not-accepted reason 1-7")] = "1",
    config: ConfigOption = None,
    as_json: JsonOption = False,
) -> None:
    """Send a held ticket back (退单): the partner gets the write-back with the reason and the authority."""
    _settle(config, ticket_id, {"outcome": "return", "reason": reason, "competent_authority": authority,
                                "return_reason_code": reason_code}, as_json)
