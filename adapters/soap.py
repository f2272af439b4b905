"""The `soap` adapter kind (zeep, asynchronous): pull a partner's work orders, acknowledge them, write statuses back."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import zeep
from lxml import etree
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field
from zeep.exceptions import Error as ZeepError
from zeep.exceptions import ValidationError as ZeepValidationError
from zeep.proxy import AsyncServiceProxy
from zeep.transports import AsyncTransport
from zeep.wsdl import Document
from zeep.wsdl.bindings.soap import Soap11Binding
from zeep.wsse.username import UsernameToken

from adapters.base import Adapter, ConfigKey, PartnerUnavailable, PullBatch, PulledTicket
from adapters.config import AdapterConfig, EnvName, read_env
from adapters.destination import DestinationConfig, Duration, PositiveDuration, TimeoutConfig
from adapters.wire.replies import Reply, ReplyFault, UnreadableReply, read_reply
from adapters.wire.results import SendResult, http_error_class
from adapters.wire.senders import USER_AGENT, error_class_of, truncate_body
from adapters.wire.wsse import UsernameTokenPolicy
from contracts.delivery import ClaimedDelivery
from mapping.payload import PayloadError, xml_to_dict

log = logging.getLogger(__name__)

# zeep has no type annotations; its constructors are used through these names.
_AsyncClient: Any = zeep.AsyncClient
_AsyncServiceProxy: Any = AsyncServiceProxy
_Document: Any = Document
_UsernameToken: Any = UsernameToken

RECORD_CONTENT_TYPE = "application/xml; charset=UTF-8"
_NAME = Annotated[str, Field(min_length=1, max_length=100)]

# Error classes of a write-back, besides the HTTP and network ones of gateway.delivery.
FAULT_CLIENT = "soap_fault_client"  # the partner refused the call: retrying the same call cannot help
FAULT_SERVER = "soap_fault_server"  # the partner failed: retry
REQUEST_INVALID = "soap_request_invalid"  # the fields do not fit the operation (a spec or config problem)
BAD_RESPONSE = "soap_bad_response"  # a 200 reply that is no SOAP envelope
WSDL_UNAVAILABLE = "soap_wsdl_unavailable"  # the partner's WSDL could not be loaded yet
# A SOAP 1.1 Fault always travels as HTTP 500, so the delivery policy (which classes by status) is told
# 400 for a Client fault, which makes it permanent, and 500 for the rest, which are retried.
_CLIENT_STATUS = 400
_SERVER_STATUS = 500


class WsseCredentials(BaseModel):
    """A WS-Security UsernameToken: the username here, the password in an environment variable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: Annotated[str, Field(min_length=1, max_length=128)]
    password_env: EnvName

    def password(self, purpose: str) -> str:
        return read_env(self.password_env, purpose)


class SoapOptions(BaseModel):
    """The `options:` of a `soap` adapter. Defaults fit the provincial 12345 OrderService."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # The partner's WSDL: a URL, or a file path relative to the adapter file. Needed to poll and to write back.
    wsdl: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    binding: _NAME | None = None  # `{namespace}Name` or `Name`; default: the WSDL's only SOAP 1.1 binding
    address: AnyHttpUrl | None = None  # overrides the WSDL's soap:address
    wsdl_timeout_seconds: PositiveDuration = 30.0
    wsse: WsseCredentials | None = None  # the token we present to the partner
    # The token the partner presents when it pushes to POST /soap/{adapter_id}; without it the endpoint refuses.
    inbound_wsse: WsseCredentials | None = None
    created_max_age_seconds: PositiveDuration = 300.0
    clock_skew_seconds: Duration = 60.0
    # A wsu:Created without an offset is UTC (WS-Security); "+08:00" reads it as Beijing time, for a partner whose
    # system writes its wall clock without a zone (it would otherwise be refused as 8 hours in the future).
    zoneless_created: Literal["UTC", "+08:00"] = "UTC"
    # Pulling: poll.operation(since_param=<cursor>, max_param=<batch size>) answers record elements and a watermark.
    record_element: _NAME = "order"
    since_param: _NAME = "since"
    max_param: _NAME | None = "max"
    watermark_element: _NAME | None = "watermark"
    has_more_element: _NAME | None = "hasmore"
    ack_operation: _NAME | None = "AckOrders"  # called with ack_param=[tokens] once the records are stored
    ack_param: _NAME = "infoid"
    ack_token_field: _NAME = "infoid"  # noqa: S105 - a field name, not a secret; which field of a record identifies it to ack_operation


class _GatewayTransport(AsyncTransport):
    """zeep's transport, its requests naming the gateway, not zeep, as their User-Agent."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self.client.headers["User-Agent"] = USER_AGENT  # zeep's __init__ sets "Zeep/<version>" on both clients
        self.wsdl_client.headers["User-Agent"] = USER_AGENT


_Transport: Any = _GatewayTransport


@dataclass
class _Channel:
    """One zeep client and proxy with its own httpx timeouts (polling and write-back time out differently)."""

    http: httpx.AsyncClient
    total_timeout: float
    proxy: Any = None


@dataclass
class _Service:
    document: Any
    binding: str
    address: str
    channels: dict[str, _Channel] = field(default_factory=dict)


def _http_client(timeout: TimeoutConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout.total, connect=timeout.connect),
                             follow_redirects=False, trust_env=False)


def zeep_settings(*, raw_response: bool = False) -> zeep.Settings:
    """Hardened parsing of partner WSDLs and replies: no DTD, no entities, nothing fetched by an entity.

    `raw_response`: zeep hands back the HTTP response unread (the adapter reads each reply once, itself)."""
    return zeep.Settings(forbid_dtd=True, forbid_entities=True, forbid_external=True, xml_huge_tree=False,
                         raw_response=raw_response)


def fault_class(code: str | None) -> str:
    """FAULT_CLIENT for a fault the sender caused (Client, Sender, any wsse: code), FAULT_SERVER otherwise."""
    text = (code or "").strip()
    local = text.rsplit("}", 1)[-1].rsplit(":", 1)[-1]
    if local.startswith(("Client", "Sender")) or text.startswith("wsse:") or local in (
            "FailedAuthentication", "InvalidSecurity", "InvalidSecurityToken", "FailedCheck"):
        return FAULT_CLIENT
    return FAULT_SERVER


class SoapAdapter(Adapter):
    """A partner with a SOAP 1.1 service: pull with poll.operation, sign for with ack_operation, write back with
    callback.operation. The WSDL is loaded once, in a thread, on first use (or `start()`)."""

    kind = "soap"
    options_model = SoapOptions

    def __init__(self, config: AdapterConfig) -> None:
        super().__init__(config)
        self.options = SoapOptions.model_validate(config.options)
        self._service: _Service | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def check_config(cls, config: AdapterConfig) -> list[tuple[ConfigKey, str]]:
        problems: list[tuple[ConfigKey, str]] = []
        if config.poll is not None and config.poll.url is not None:
            problems.append((("poll", "url"), "a soap adapter polls an operation: set poll.operation, not poll.url"))
        if config.callback is not None and config.callback.url is not None:
            problems.append((("callback", "url"), "a soap adapter writes back through an operation: set "
                                                  "callback.operation, not callback.url"))
        if (config.poll is not None or config.callback is not None) and not config.options.get("wsdl"):
            problems.append((("options",), "a soap adapter that polls or writes back needs options.wsdl: the "
                                           "partner's WSDL URL or file"))
        return problems

    # -- inbound (POST /soap/{adapter_id}) ---------------------------------------------------------
    @property
    def accepts_soap_push(self) -> bool:
        return self.config.enabled and self.options.inbound_wsse is not None

    def inbound_policy(self) -> UsernameTokenPolicy | None:
        """Who may push to this adapter's SOAP endpoint; MissingCredential when the password variable is unset."""
        creds = self.options.inbound_wsse
        if creds is None:
            return None
        return UsernameTokenPolicy(
            username=creds.username,
            password=creds.password(f"the WS-Security password partner {self.id} pushes with"),
            max_age_seconds=self.options.created_max_age_seconds,
            future_skew_seconds=self.options.clock_skew_seconds,
            zoneless_offset=timedelta(hours=8) if self.options.zoneless_created == "+08:00" else timedelta(0),
        )

    # -- the zeep client ---------------------------------------------------------------------------
    @property
    def wsdl_location(self) -> str:
        location = self.options.wsdl
        if location is None:
            raise ValueError(f"adapter {self.id}: options.wsdl is not set")
        if location.startswith(("http://", "https://")):
            return location
        path = Path(location)
        if not path.is_absolute() and self.config.source_file is not None:
            path = self.config.source_file.parent / path
        return str(path)

    async def start(self) -> None:
        """Load the partner's WSDL now rather than at the first poll or write-back; PartnerUnavailable."""
        await self._ensure_service()

    async def _ensure_service(self) -> _Service:
        if self._service is not None:
            return self._service
        async with self._lock:
            if self._service is not None:
                return self._service
            timeouts = {"poll": self.config.poll.timeout if self.config.poll else TimeoutConfig(),
                        "callback": self.config.callback.timeout if self.config.callback else TimeoutConfig()}
            channels = {name: _Channel(http=_http_client(t), total_timeout=t.total) for name, t in timeouts.items()}
            try:
                # Loading a WSDL is synchronous in zeep (and may fetch imports): never on the event loop.
                self._service = await asyncio.to_thread(self._build, channels)
            except Exception as err:
                for channel in channels.values():
                    await channel.http.aclose()
                raise PartnerUnavailable(f"adapter {self.id}: cannot load the WSDL {self.wsdl_location}: "
                                         f"{type(err).__name__}: {err}") from err
            log.info("soap adapter ready", extra={"adapter_id": self.id, "binding": self._service.binding,
                                                  "address": self._service.address})
            return self._service

    def _build(self, channels: dict[str, _Channel]) -> _Service:
        settings = zeep_settings()
        with httpx.Client(timeout=self.options.wsdl_timeout_seconds, follow_redirects=False,
                          trust_env=False) as loader:
            transport = _Transport(client=channels["poll"].http, wsdl_client=loader)
            document = _Document(self.wsdl_location, transport, settings=settings)
        binding = self._binding_name(document)
        address = str(self.options.address) if self.options.address else self._address_of(document, binding)
        wsse = None
        if self.options.wsse is not None:
            password = self.options.wsse.password(f"the WS-Security password we present to partner {self.id}")
            wsse = _UsernameToken(self.options.wsse.username, password, use_digest=True)
        service = _Service(document=document, binding=binding, address=address, channels=channels)
        # zeep writes the request (and its UsernameToken); the reply is read once, by read_reply, not by zeep too.
        unread = zeep_settings(raw_response=True)
        for channel in channels.values():
            client = _AsyncClient(document, transport=_Transport(client=channel.http, wsdl_client=loader),
                                  settings=unread, wsse=wsse)
            # AsyncClient.service would be a synchronous proxy; this is the asynchronous one.
            channel.proxy = _AsyncServiceProxy(client, document.bindings[binding], address=address)
        return service

    def _binding_name(self, document: Any) -> str:
        names = [str(name) for name in document.bindings]
        wanted = self.options.binding
        if wanted is not None:
            full = wanted if wanted.startswith("{") else f"{{{document.target_namespace}}}{wanted}"
            if full not in names:
                raise ValueError(f"options.binding {wanted!r} is not in the WSDL; it has {', '.join(names)}")
            return full
        soap11 = [str(name) for name, b in document.bindings.items() if isinstance(b, Soap11Binding)]
        if len(soap11) != 1:
            raise ValueError(f"the WSDL has {len(soap11)} SOAP 1.1 bindings ({', '.join(soap11) or 'none'}): "
                             "name one in options.binding")
        return soap11[0]

    @staticmethod
    def _address_of(document: Any, binding: str) -> str:
        for service in document.services.values():
            for port in service.ports.values():
                if str(port.binding.name) == binding and port.binding_options.get("address"):
                    return str(port.binding_options["address"])
        raise ValueError(f"the WSDL gives no soap:address for {binding}: set options.address")

    async def call(self, operation: str, arguments: Mapping[str, Any], *, channel: str = "poll") -> Reply:
        """Call one operation; its reply, read once. Raises ReplyFault, UnreadableReply, zeep's errors for arguments
        the operation does not take, httpx errors, TimeoutError."""
        service = await self._ensure_service()
        chosen = service.channels[channel]
        # httpx's timeouts bound each phase; this bounds the whole call, however slowly a partner trickles.
        async with asyncio.timeout(chosen.total_timeout):
            response: httpx.Response = await chosen.proxy[operation](**arguments)
        return read_reply(response.status_code, response.content, response.headers.get("Content-Type"))

    # -- poll --------------------------------------------------------------------------------------
    async def pull(self, since_cursor: str | None) -> PullBatch:
        poll = self.config.poll
        if poll is None or poll.operation is None:
            raise RuntimeError(f"adapter {self.id} is not configured to poll")
        cursor = since_cursor if since_cursor is not None else poll.initial_cursor
        arguments: dict[str, Any] = {self.options.since_param: cursor}
        if self.options.max_param is not None:
            arguments[self.options.max_param] = poll.batch_size
        root = (await self._partner_call(poll.operation, arguments)).envelope
        if root is None:
            raise PartnerUnavailable(f"adapter {self.id}: {poll.operation} answered nothing")
        try:
            items = [self._pulled(record) for record in _records(root, self.options.record_element)]
        except PayloadError as err:
            raise PartnerUnavailable(f"adapter {self.id}: {poll.operation} answered what cannot be read: "
                                     f"{err}") from err
        next_cursor = _outside_text(root, self.options.watermark_element, self.options.record_element)
        more_text = _outside_text(root, self.options.has_more_element, self.options.record_element)
        has_more = (more_text or "").lower() in ("true", "1")
        # Without a moving cursor, "more" would pull the same page again at once, forever.
        has_more = has_more and next_cursor is not None and next_cursor != cursor
        return PullBatch(items=items, next_cursor=next_cursor, has_more=has_more)

    def _pulled(self, record: etree._Element) -> PulledTicket:
        value = xml_to_dict(record)
        payload: dict[str, Any] = value if isinstance(value, dict) else {}
        token = payload.get(self.options.ack_token_field)
        # The record's bytes cannot be cut out of the reply as sent; its own XML, in UTF-8, is kept instead.
        own = copy.deepcopy(record)
        etree.cleanup_namespaces(own)
        raw = etree.tostring(own, xml_declaration=True, encoding="UTF-8")
        return PulledTicket(payload=payload, raw_body=raw, content_type=RECORD_CONTENT_TYPE,
                            ack_token=token.strip() if isinstance(token, str) and token.strip() else None)

    async def acknowledge(self, items: Sequence[PulledTicket]) -> None:
        tokens = [item.ack_token for item in items if item.ack_token is not None]
        if not tokens or self.options.ack_operation is None:
            return
        await self._partner_call(self.options.ack_operation, {self.options.ack_param: tokens})

    async def _partner_call(self, operation: str, arguments: Mapping[str, Any]) -> Reply:
        try:
            return await self.call(operation, arguments, channel="poll")
        except ReplyFault as fault:
            raise PartnerUnavailable(f"adapter {self.id}: {operation} answered a Fault {fault.code}: "
                                     f"{fault.message}") from fault
        except UnreadableReply as err:
            raise PartnerUnavailable(f"adapter {self.id}: {operation} answered what cannot be read: {err}") from err
        except (ZeepError, httpx.HTTPError, TimeoutError) as err:
            # asyncio's TimeoutError, and some of httpx's, carry no text: say what the limit was.
            detail = str(err) or (f"no complete answer within {self.config.poll.timeout.total:g} s (poll.timeout)"
                                  if isinstance(err, TimeoutError | httpx.TimeoutException) and self.config.poll
                                  else repr(err))
            raise PartnerUnavailable(f"adapter {self.id}: {operation}: {type(err).__name__}: {detail}") from err

    # -- write-back --------------------------------------------------------------------------------
    def callback_sender(self) -> SoapSender | None:
        destination = self.callback_destination()
        if destination is None or self.config.callback is None or self.config.callback.operation is None:
            return None
        return SoapSender(self, destination, self.config.callback.operation)

    async def aclose(self) -> None:
        service, self._service = self._service, None
        if service is not None:
            for channel in service.channels.values():
                await channel.http.aclose()


class SoapSender:
    """Calls the partner's write-back operation with a callback's fields (the JSON body on the lane)."""

    def __init__(self, adapter: SoapAdapter, destination: DestinationConfig, operation: str) -> None:
        self.adapter = adapter
        self.destination = destination
        self.operation = operation

    async def send(self, claim: ClaimedDelivery) -> SendResult:
        started = time.monotonic()

        def result(status: int | None, error_class: str | None, body: str) -> SendResult:
            return SendResult(status_code=status, error_class=error_class, body=truncate_body(body.encode("utf-8")),
                              duration=time.monotonic() - started)

        try:
            fields = json.loads(claim.body)
        except ValueError as err:
            return result(_CLIENT_STATUS, REQUEST_INVALID, f"the callback body is not JSON: {err}")
        if not isinstance(fields, dict):
            return result(_CLIENT_STATUS, REQUEST_INVALID, "the callback body is not a JSON object of fields")
        try:
            reply = await self.adapter.call(self.operation, fields, channel="callback")
        except ReplyFault as fault:
            kind = fault_class(fault.code)
            status = _CLIENT_STATUS if kind == FAULT_CLIENT else _SERVER_STATUS
            return result(status, kind, f"{fault.code}: {fault.message}")
        except UnreadableReply as err:
            code = err.status_code if err.status_code != 200 else None
            return result(code, http_error_class(code) if code else BAD_RESPONSE, str(err))
        except (ZeepValidationError, TypeError) as err:
            # zeep refuses fields the operation does not declare, or misses required ones: a spec or config error.
            return result(_CLIENT_STATUS, REQUEST_INVALID, f"{self.operation}: {type(err).__name__}: {err}")
        except ZeepError as err:
            return result(None, BAD_RESPONSE, f"{type(err).__name__}: {err}")
        except PartnerUnavailable as err:
            return result(None, WSDL_UNAVAILABLE, str(err))
        except Exception as err:  # every failure is a recorded attempt (timeouts, refused connections), never a crash
            return result(None, error_class_of(err), f"{type(err).__name__}: {err}")
        return result(reply.status_code, None, reply.text)

    async def aclose(self) -> None:
        return None  # the adapter owns the connections


def _records(element: etree._Element, name: str) -> Iterator[etree._Element]:
    """Elements with local name `name`, outermost only (a record inside a record belongs to it)."""
    for child in element:
        if not isinstance(child.tag, str):
            continue
        if etree.QName(child).localname == name:
            yield child
        else:
            yield from _records(child, name)


def _outside_text(element: etree._Element, name: str | None, record: str) -> str | None:
    """The stripped text of the first element `name` outside any record, or None."""
    if name is None:
        return None
    for child in element:
        if not isinstance(child.tag, str):
            continue
        local = etree.QName(child).localname
        if local == record:
            continue
        if local == name:
            text = (child.text or "").strip()
            return text or None
        found = _outside_text(child, name, record)
        if found is not None:
            return found
    return None
