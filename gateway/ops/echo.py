"""The sender's echo as ops see it (事事有回音): a ticket's echo with the callback it waits for, and the tickets whose
partner has not heard their latest status for longer than the configured time, longest behind first."""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.codesets import Status
from contracts.delivery import DeliveryReceipt
from gateway.ops.schemas import BehindTicket, EchoView
from gateway.runtime import Runtime
from gateway.store.base import PartnerEcho, Store


class EchoBoard:
    """Reads the echoes the store keeps; the gateway's `echo` settings say how long a partner may be behind."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    @property
    def store(self) -> Store:
        return self.runtime.store

    @property
    def behind_after(self) -> timedelta:
        return timedelta(seconds=self.runtime.settings.echo.behind_after_seconds)

    async def view(self, echo: PartnerEcho, now: datetime) -> EchoView:
        waiting: DeliveryReceipt | None = None
        if echo.waiting_delivery_id is not None:
            waiting = await self.store.get_delivery(echo.waiting_delivery_id)
        behind = (now - echo.behind_since).total_seconds() if echo.behind_since is not None else 0.0
        return EchoView(
            destination=echo.destination, latest_status=Status(echo.latest_status),
            latest_sequence=echo.latest_sequence, latest_at=echo.latest_at,
            heard_status=Status(echo.heard_status) if echo.heard_status is not None else None,
            heard_sequence=echo.heard_sequence, heard_at=echo.heard_at, behind_since=echo.behind_since,
            behind_seconds=max(behind, 0.0),
            overdue=echo.behind_since is not None and now - echo.behind_since > self.behind_after,
            waiting=waiting,
        )

    async def of_ticket(self, ticket_id: str, now: datetime) -> EchoView | None:
        echo = await self.store.get_echo(ticket_id)
        return await self.view(echo, now) if echo is not None else None

    async def behind(self, now: datetime, limit: int) -> list[BehindTicket]:
        """Tickets behind for longer than the configured time, longest first, from the store's index."""
        found = []
        for echo in await self.store.list_behind(now - self.behind_after, limit):
            ticket = await self.store.get_ticket(echo.ticket_id)
            found.append(BehindTicket(
                ticket_id=echo.ticket_id,
                source_ticket_no=ticket.source.source_ticket_no if ticket else None,
                adapter_id=ticket.source.adapter_id if ticket else None,
                status=ticket.lifecycle.status if ticket else None,
                echo=await self.view(echo, now)))
        return found

    async def count(self, now: datetime) -> int:
        return await self.store.count_behind(now - self.behind_after)
