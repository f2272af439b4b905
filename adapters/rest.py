"""The `rest` adapter kind (httpx): poll a partner's JSON API by cursor, acknowledge, send signed callbacks."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any

import httpx
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from adapters.base import Adapter, ConfigKey, PartnerUnavailable, PullBatch, PulledTicket
from adapters.config import AdapterConfig
from adapters.wire.senders import HeaderHook, HttpSender, Sender
from adapters.wire.webhooks import WebhookSigner
from contracts.delivery import ClaimedDelivery
from mapping.paths import Getter, compile_path
from mapping.payload import PayloadError, parse_json_body

JSON_CONTENT_TYPE = "application/json; charset=utf-8"
_ERROR_EXCERPT = 300


class RestOptions(BaseModel):
    """The `options:` of a `rest` adapter: where things are in the partner's JSON (mapping path syntax)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    items_path: Annotated[str, Field(min_length=1)] = "items"  # the list of tickets in a pull response
    cursor_path: Annotated[str, Field(min_length=1)] | None = "next_cursor"  # the cursor to pull from next
    has_more_path: Annotated[str, Field(min_length=1)] | None = None  # true when more are waiting now
    cursor_param: Annotated[str, Field(min_length=1, max_length=64)] = "since"  # query parameter of the cursor
    limit_param: Annotated[str, Field(min_length=1, max_length=64)] | None = "limit"  # query parameter of the size
    query: dict[str, str] = Field(default_factory=dict)  # further fixed query parameters
    ack_url: AnyHttpUrl | None = None  # POSTed {ack_field: [tokens]} after the pulled tickets are stored
    ack_token_path: Annotated[str, Field(min_length=1)] | None = None  # the token of one item, e.g. djbh
    ack_field: Annotated[str, Field(min_length=1, max_length=64)] = "ids"


def _excerpt(response: httpx.Response) -> str:
    return response.text[:_ERROR_EXCERPT]


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


class RestAdapter(Adapter):
    """A partner with a JSON API: GET <poll.url>?<cursor_param>=<cursor>&<limit_param>=<batch_size>."""

    kind = "rest"
    options_model = RestOptions

    def __init__(self, config: AdapterConfig, *, client: httpx.AsyncClient | None = None) -> None:
        super().__init__(config)
        self.options = RestOptions.model_validate(config.options)
        self._items: Getter = compile_path(self.options.items_path)
        self._cursor: Getter | None = compile_path(self.options.cursor_path) if self.options.cursor_path else None
        self._has_more: Getter | None = (compile_path(self.options.has_more_path)
                                         if self.options.has_more_path else None)
        self._ack_token: Getter | None = (compile_path(self.options.ack_token_path)
                                          if self.options.ack_token_path else None)
        self._client = client
        self._owns_client = client is None

    @classmethod
    def check_config(cls, config: AdapterConfig) -> list[tuple[ConfigKey, str]]:
        problems: list[tuple[ConfigKey, str]] = []
        if config.poll is not None and config.poll.url is None:
            problems.append((("poll",), "a rest adapter polls a url (poll.operation is for soap)"))
        if config.callback is not None:
            if config.callback.url is None:
                problems.append((("callback",), "a rest adapter calls back a url (callback.operation is for soap)"))
            if config.callback.secret_env is None:
                problems.append((("callback",), "rest callbacks are signed: set callback.secret_env to the name "
                                                "of a variable holding a whsec_ secret"))
        options = config.options
        if options.get("ack_url") and not options.get("ack_token_path"):
            problems.append((("options", "ack_url"), "ack_url needs ack_token_path: which field of an item to ack"))
        return problems

    # -- poll ---------------------------------------------------------------------------------------
    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            poll = self.config.poll
            timeout = poll.timeout if poll is not None else None
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(timeout.total, connect=timeout.connect) if timeout else httpx.Timeout(30.0),
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def pull(self, since_cursor: str | None) -> PullBatch:
        poll = self.config.poll
        if poll is None or poll.url is None:
            raise RuntimeError(f"adapter {self.id} is not configured to poll")
        params = dict(self.options.query)
        cursor = since_cursor if since_cursor is not None else poll.initial_cursor
        if cursor is not None:
            params[self.options.cursor_param] = cursor
        if self.options.limit_param is not None:
            params[self.options.limit_param] = str(poll.batch_size)
        url = str(poll.url)
        try:
            response = await self._http().get(url, params=params, headers=self.config.auth.outbound_headers())
        except httpx.HTTPError as err:
            raise PartnerUnavailable(f"GET {url}: {type(err).__name__}: {err}") from err
        if response.status_code != 200:
            raise PartnerUnavailable(f"GET {url} answered {response.status_code}: {_excerpt(response)}")
        try:
            # In the charset the partner declares (older systems answer in GBK), not only the UTF flavours.
            data = parse_json_body(response.content, response.headers.get("content-type"))
        except PayloadError as err:
            raise PartnerUnavailable(f"GET {url}: {err}: {_excerpt(response)}") from err
        found = self._items(data)
        if found is None:
            found = []
        if not isinstance(found, list):
            raise PartnerUnavailable(f"GET {url}: {self.options.items_path} is a {type(found).__name__}, not a list")
        items = [self._pulled(item) for item in found]
        next_cursor = _text(self._cursor(data)) if self._cursor is not None else None
        has_more = bool(self._has_more(data)) if self._has_more is not None else len(items) >= poll.batch_size
        # Without a moving cursor, "more" would pull the same page again at once, forever.
        has_more = has_more and next_cursor is not None and next_cursor != cursor
        return PullBatch(items=items, next_cursor=next_cursor, has_more=has_more)

    def _pulled(self, item: Any) -> PulledTicket:
        # The item's own bytes are not separable from the page; its JSON text is kept as the raw payload.
        raw = json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        token = _text(self._ack_token(item)) if self._ack_token is not None else None
        return PulledTicket(payload=item, raw_body=raw, content_type=JSON_CONTENT_TYPE, ack_token=token)

    async def acknowledge(self, items: Sequence[PulledTicket]) -> None:
        if self.options.ack_url is None:
            return
        tokens = [item.ack_token for item in items if item.ack_token is not None]
        if not tokens:
            return
        url = str(self.options.ack_url)
        try:
            response = await self._http().post(url, json={self.options.ack_field: tokens},
                                               headers=self.config.auth.outbound_headers())
        except httpx.HTTPError as err:
            raise PartnerUnavailable(f"POST {url}: {type(err).__name__}: {err}") from err
        if not 200 <= response.status_code < 300:
            raise PartnerUnavailable(f"POST {url} answered {response.status_code}: {_excerpt(response)}")

    # -- write-back ---------------------------------------------------------------------------------
    def callback_sender(self) -> Sender | None:
        destination = self.callback_destination()
        callback = self.config.callback
        if destination is None or callback is None:
            return None
        signer = WebhookSigner(callback.secrets())
        return HttpSender(destination, header_hooks=[_webhook_headers(signer)])

    async def aclose(self) -> None:
        if self._client is not None and self._owns_client:
            await self._client.aclose()
        self._client = None


def webhook_id(claim: ClaimedDelivery) -> str:
    """The webhook-id of a delivery: the same for every retry, so the partner can drop repeats."""
    return f"msg_{claim.delivery_id}"


def _webhook_headers(signer: WebhookSigner) -> HeaderHook:
    # Signed anew at each attempt: a retry hours later must carry a fresh timestamp to pass the tolerance.
    def hook(claim: ClaimedDelivery, now: datetime) -> Mapping[str, str]:
        return signer.sign(webhook_id(claim), now, claim.body)

    return hook
