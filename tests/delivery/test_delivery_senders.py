"""The HTTP sender against a real receiver: what goes on the wire and how each failure is classed."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

import pytest

from adapters.destination import DestinationConfig
from adapters.wire.results import ErrorClass
from adapters.wire.senders import USER_AGENT, HttpSender, build_sender, register_sender_kind, truncate_body
from contracts.delivery import ClaimedDelivery, DeliveryKind
from simulators.receiver import Action, Receiver, ReceiverThread
from tests.delivery.delivery_support import TICKET_BODY, destination


def claim(key: str = "5f2c0e-idem", headers: dict[str, str] | None = None) -> ClaimedDelivery:
    now = datetime.now(UTC)
    return ClaimedDelivery(
        delivery_id="d-1", ticket_id="t-1", destination="national", kind=DeliveryKind.FORWARD,
        idempotency_key=key, body=TICKET_BODY, content_type="application/json; charset=utf-8",
        headers=headers or {}, attempts=0, created_at=now, lease_token="lease-1",
        lease_until=now + timedelta(seconds=10),
    )


async def send_once(dest: DestinationConfig, c: ClaimedDelivery | None = None) -> object:
    sender = HttpSender(dest)
    try:
        return await sender.send(c or claim())
    finally:
        await sender.aclose()


async def test_sends_body_content_type_and_idempotency_key(receiver: Receiver) -> None:
    dest = destination(receiver, headers={"Authorization": "Bearer t0ken"})
    sender = HttpSender(dest)
    result = await sender.send(claim(headers={"X-Ticket-Version": "3"}))
    await sender.aclose()
    assert result.status_code == 200
    assert result.error_class is None
    (request,) = receiver.requests()
    assert request.method == "POST"
    assert request.path == "/api/v1/tickets"
    assert request.body == TICKET_BODY
    assert request.headers["idempotency-key"] == "5f2c0e-idem"
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.headers["authorization"] == "Bearer t0ken"
    assert request.headers["x-ticket-version"] == "3"


async def test_a_delivery_header_cannot_replace_the_idempotency_key(receiver: Receiver) -> None:
    sender = HttpSender(destination(receiver))
    await sender.send(claim(headers={"idempotency-key": "forged"}))
    await sender.aclose()
    assert [r.key for r in receiver.requests()] == ["5f2c0e-idem"]


async def test_header_hooks_add_headers_per_attempt(receiver: Receiver) -> None:
    def stamp(c: ClaimedDelivery, at: datetime) -> dict[str, str]:
        return {"webhook-id": c.delivery_id, "webhook-timestamp": str(int(at.timestamp()))}

    sender = HttpSender(destination(receiver), header_hooks=[stamp])
    await sender.send(claim())
    await sender.aclose()
    (request,) = receiver.requests()
    assert request.headers["webhook-id"] == "d-1"
    assert request.headers["webhook-timestamp"].isdigit()


async def test_a_destination_cannot_set_cookies_on_the_gateway(receiver: Receiver) -> None:
    """The sender keeps no cookie jar: what one answer sets is not sent with the next delivery."""
    receiver.script(default=Action(headers={"Set-Cookie": "session=abc123; Path=/"}))
    sender = HttpSender(destination(receiver))
    try:
        await sender.send(claim("first"))
        await sender.send(claim("second"))
    finally:
        await sender.aclose()
    assert [r.key for r in receiver.requests()] == ["first", "second"]
    assert all("cookie" not in r.headers for r in receiver.requests())
    assert receiver.requests()[0].headers["user-agent"] == USER_AGENT


async def test_trust_env_sends_through_the_environment_proxy_unless_no_proxy_names_the_host(
        receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """`options.trust_env`: HTTP_PROXY is used (the proxy gets the absolute URL), NO_PROXY exempts a host."""
    with ReceiverThread() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        dest = destination(receiver, options={"trust_env": True})
        await send_once(dest)
        assert [r.path for r in proxy.requests()] == [str(dest.url)]
        assert receiver.requests() == []
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        await send_once(dest)
        assert len(proxy.requests()) == 1
        assert [r.path for r in receiver.requests()] == ["/api/v1/tickets"]
        await send_once(destination(receiver))  # without trust_env the environment is not read
        assert len(proxy.requests()) == 1


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.script(default=Action(status=302, headers={"Location": receiver.url + "elsewhere"}))
    result = await send_once(destination(receiver))
    assert result.status_code == 302
    assert result.error_class == "http_302"
    assert len(receiver.requests()) == 1


async def test_retry_after_is_read_from_the_response(receiver: Receiver) -> None:
    receiver.script(default=Action(status=429, retry_after="7"))
    result = await send_once(destination(receiver))
    assert (result.status_code, result.retry_after) == (429, 7)  # type: ignore[attr-defined]


async def test_a_slow_answer_is_a_timeout(receiver: Receiver) -> None:
    receiver.script(default=Action(delay=60))  # unless the client leaves first
    result = await send_once(destination(receiver, timeout={"connect": 0.5, "total": 0.5}))
    assert result.status_code is None
    assert result.error_class == ErrorClass.TIMEOUT
    # It waited for the timeout; not for the minute, or the answer would have come instead of a timeout.
    assert result.duration > 0.4  # type: ignore[attr-defined]


async def test_a_dropped_connection_is_classed(receiver: Receiver) -> None:
    receiver.script(default=Action(drop=True))
    result = await send_once(destination(receiver))
    assert result.status_code is None
    assert result.error_class == ErrorClass.CONNECTION_DROPPED


async def test_a_refused_connection_is_classed() -> None:
    dest = DestinationConfig(name="national", url="http://127.0.0.1:9/")  # type: ignore[arg-type]
    result = await send_once(dest)
    assert result.status_code is None
    assert result.error_class == ErrorClass.CONNECT_ERROR


async def test_the_response_body_is_kept_up_to_16_kb(receiver: Receiver) -> None:
    receiver.script(default=Action(status=500, body="错" * 20000))
    result = await send_once(destination(receiver))
    body = result.body  # type: ignore[attr-defined]
    assert len(body.encode("utf-8")) <= 16 * 1024
    assert body.startswith("错错错")


def test_truncation_never_exceeds_16_kb_even_with_bad_bytes() -> None:
    assert len(truncate_body(b"\xff" * 20000).encode("utf-8")) <= 16 * 1024


def test_sender_kinds_are_registered_by_name(receiver: Receiver) -> None:
    class Recorder:
        def __init__(self, dest: DestinationConfig) -> None:
            self.dest = dest

        async def send(self, claim: ClaimedDelivery) -> object:
            raise NotImplementedError

        async def aclose(self) -> None:
            return None

    register_sender_kind("test-recorder", Recorder)  # type: ignore[arg-type]
    dest = DestinationConfig(name="soapy", sender="test-recorder", options={"action": "ReplyOrder"})
    sender = build_sender(dest)
    assert isinstance(sender, Recorder)
    assert sender.dest.options == {"action": "ReplyOrder"}
    with pytest.raises(ValueError, match="already registered"):
        register_sender_kind("test-recorder", Recorder)  # type: ignore[arg-type]


def test_an_unknown_sender_kind_is_named() -> None:
    with pytest.raises(ValueError, match="unknown sender kind 'carrier-pigeon'"):
        build_sender(DestinationConfig(name="x", sender="carrier-pigeon"))


async def test_the_method_can_be_configured(receiver: Receiver) -> None:
    await send_once(destination(receiver, options={"method": "PUT"}))
    assert [r.method for r in receiver.requests()] == ["PUT"]


def test_unknown_http_options_are_refused(receiver: Receiver) -> None:
    with pytest.raises(ValueError, match="options"):
        HttpSender(destination(receiver, options={"follow_redirects": True}))


async def test_an_idle_connection_the_receiver_hung_up_is_replaced_not_reused() -> None:
    """The pool's check of idle connections (gateway/delivery/transport.py) still sees a server's hang-up: a
    receiver that closes each keep-alive connection after its answer, without saying so, is sent to anew."""
    connections = 0

    async def answer_once_then_hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        head = await reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"content-length: *(\d+)", head, re.IGNORECASE)
        await reader.readexactly(int(length.group(1)) if length else 0)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()

    server = await asyncio.start_server(answer_once_then_hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sender = HttpSender(DestinationConfig(name="hangs-up", url=f"http://127.0.0.1:{port}/in", concurrency=1))
    try:
        for i in range(3):
            result = await sender.send(claim(f"key-{i}"))
            assert result.status_code == 200, result
            await asyncio.sleep(0.2)  # the hang-up has reached the idle connection
    finally:
        await sender.aclose()
        server.close()
        await server.wait_closed()
    assert connections == 3
