"""The one interface every adapter kind implements: pull tickets, acknowledge them, write statuses back."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel

from adapters.config import AdapterConfig
from adapters.destination import DestinationConfig
from adapters.errors import AdapterError
from adapters.wire.senders import Sender
from contracts.delivery import DeliveryKind, OutboxEntry

ConfigKey = tuple[str | int, ...]


@dataclass(frozen=True)
class PulledTicket:
    """One partner ticket as pulled: its parsed payload, the bytes kept as the raw payload, and how to ack it."""

    payload: object
    raw_body: bytes
    content_type: str
    ack_token: str | None = None  # what the partner wants back to mark this ticket taken; None: nothing


@dataclass(frozen=True)
class PullBatch:
    """What one pull brought; `next_cursor` None leaves the stored cursor where it was."""

    items: list[PulledTicket]
    next_cursor: str | None = None
    has_more: bool = False  # the partner holds more right now: pull again without waiting the interval


class PartnerUnavailable(AdapterError):
    """The partner could not be pulled from or acknowledged to (network, 5xx, a reply we cannot read).

    Pollers back off and try again; nothing is acknowledged and the cursor does not move.
    """


class Adapter(ABC):
    """An adapter kind, configured for one partner. Subclasses are registered by `kind` name.

    A kind is a class: ``RestAdapter(config)`` builds it. The gateway uses an adapter like this:
    - push: if its configuration is enabled with `push`, the inbound route authenticates the partner and hands
      the body to intake;
    - poll: if `pulls`, a poller calls `pull(cursor)`, stores every item, then `acknowledge(items)`;
    - write-back: a status change is reverse-mapped into the partner's fields, put on the adapter's
      callback lane with `callback_entry(fields, ...)`, and sent by `callback_sender()` through the
      delivery engine (retries, dead letters). The lane's body is always the JSON object of the partner's
      fields; a kind turns it into its own wire format (REST posts it as is; SOAP calls an operation).
    """

    kind: ClassVar[str]
    # The `options:` section of the adapter file for this kind, checked at load; None: no options allowed.
    options_model: ClassVar[type[BaseModel] | None] = None

    def __init__(self, config: AdapterConfig) -> None:
        if config.kind != self.kind:
            raise ValueError(f"adapter {config.id}: configured kind {config.kind!r} built as kind {self.kind!r}")
        self.config = config

    @classmethod
    def check_config(cls, config: AdapterConfig) -> list[tuple[ConfigKey, str]]:
        """Kind-specific problems of a configuration, as (key path, message); checked at load."""
        return []

    @property
    def id(self) -> str:
        return self.config.id

    @property
    def pulls(self) -> bool:
        return self.config.enabled and self.config.poll is not None

    @property
    def writes_back(self) -> bool:
        return self.config.callback is not None

    # -- poll ---------------------------------------------------------------------------------------
    @abstractmethod
    async def pull(self, since_cursor: str | None) -> PullBatch:
        """The partner's tickets after `since_cursor` (None: from the configured start); PartnerUnavailable."""

    @abstractmethod
    async def acknowledge(self, items: Sequence[PulledTicket]) -> None:
        """Tell the partner these tickets are stored; called only after they are. PartnerUnavailable."""

    # -- write-back ---------------------------------------------------------------------------------
    def callback_destination(self) -> DestinationConfig | None:
        """The delivery lane of this adapter's status callbacks (None: the partner hears nothing back)."""
        callback = self.config.callback
        if callback is None:
            return None
        # An http lane's options are the http sender's own; a kind with its own sender reads the operation.
        options: dict[str, object] = {"operation": callback.operation} if callback.operation is not None else {}
        return DestinationConfig(
            name=self.config.callback_lane,
            url=callback.url,
            sender="http" if callback.url is not None and callback.operation is None else self.kind,
            options=options,
            timeout=callback.timeout,
            retry=callback.retry,
            concurrency=callback.concurrency,
        )

    @abstractmethod
    def callback_sender(self) -> Sender | None:
        """The sender for `callback_destination()`; give it to the DeliveryEngine under that lane's name."""

    def callback_entry(self, fields: Mapping[str, object], *, idempotency_key: str) -> OutboxEntry:
        """An outbox entry for one status callback: the partner's fields (already reverse-mapped) as JSON.

        `idempotency_key` must be unique per status event (not the ticket's key), or the partner would
        drop the second status of one ticket as a repeat.
        """
        if self.config.callback is None:
            raise ValueError(f"adapter {self.id} has no callback configured")
        body = json.dumps(dict(fields), ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")
        return OutboxEntry(destination=self.config.callback_lane, kind=DeliveryKind.CALLBACK, body=body,
                           content_type="application/json; charset=utf-8", idempotency_key=idempotency_key)

    async def aclose(self) -> None:
        """Release connections; the adapter is not used afterwards."""
        return None
