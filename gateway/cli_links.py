"""Duplicate links on the command line: `tickets links list | confirm | dismiss`, on the configured store."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from gateway.cli_ops import ConfigOption, JsonOption, _echo_json, _labelled, _options, _run, _table

links_cli = typer.Typer(help="Possible cross-line duplicates linked at intake: list a ticket's links, confirm or "
                             "dismiss one.", add_completion=False, no_args_is_help=True)

TicketArgument = Annotated[str, typer.Argument(help="the gateway's ticket id")]
LinkedArgument = Annotated[str, typer.Argument(help="the ticket id of the linked ticket")]
NoteOption = Annotated[str | None, typer.Option(help="why, in Chinese (kept on both tickets and in the audit)")]


@links_cli.command("list")
def links_list(ticket_id: TicketArgument, config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """A ticket's links: the linked ticket, score, state and reasons."""
    from gateway.ops.errors import OpsError

    async def work(service: Any, user: Any) -> Any:
        ticket = await service.store.get_ticket(ticket_id)
        if ticket is None:
            raise OpsError(404, "not_found", f"no ticket {ticket_id}", zh=f"找不到工单 {ticket_id}", field="ticket_id")
        return ticket.links

    links = _run(config, work)
    if as_json:
        _echo_json([k.model_dump(mode="json") for k in links])
        return
    from gateway.ops.views import LINK_STATES

    _table([(k.ticket_id, k.adapter_id, k.source_ticket_no, f"{k.score:.2f}", _labelled(k.state, LINK_STATES),
             k.decided_by or "-", "；".join(k.reasons)) for k in links],
           header=("ticket_id 关联工单", "adapter 对接系统", "source_no 来源工单号", "score 评分", "state 状态",
                   "decided_by 决定人", "reasons 依据"))
    typer.echo(f"{len(links)} link(s) 共 {len(links)} 条")


def _decide(config: Any, ticket_id: str, linked_ticket_id: str, raw: dict[str, Any], as_json: bool) -> None:
    from gateway.ops.links import decide
    from gateway.tickets.links import LinkDecision

    decision = _options(LinkDecision, raw)

    async def work(service: Any, user: Any) -> Any:
        return await decide(service, ticket_id, linked_ticket_id, decision, user)

    result = _run(config, work)
    if as_json:
        _echo_json(result.model_dump(mode="json"))
        return
    typer.echo(f"{result.ticket_id} ↔ {result.linked_ticket_id}: {result.link.state}, audit {result.audit_id}")


@links_cli.command("confirm")
def links_confirm(ticket_id: TicketArgument, linked_ticket_id: LinkedArgument, note: NoteOption = None,
                  config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The two tickets are one matter: the link is marked confirmed on both."""
    _decide(config, ticket_id, linked_ticket_id, {"decision": "confirm", "note": note}, as_json)


@links_cli.command("dismiss")
def links_dismiss(ticket_id: TicketArgument, linked_ticket_id: LinkedArgument, note: NoteOption = None,
                  config: ConfigOption = None, as_json: JsonOption = False) -> None:
    """The two tickets are different matters: the link is marked dismissed on both (kept, never deleted)."""
    _decide(config, ticket_id, linked_ticket_id, {"decision": "dismiss", "note": note}, as_json)
