"""Alert channels as delivery lanes: one destination (`alert:<name>`) and one sender per configured channel."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import smtplib
import ssl
import time
import urllib.parse
from collections.abc import Mapping
from datetime import datetime

import httpx

from adapters.destination import DestinationConfig
from adapters.rest import webhook_id
from adapters.wire.results import ErrorClass, SendResult, http_error_class
from adapters.wire.senders import HttpSender, Sender, error_class_of, truncate_body
from adapters.wire.webhooks import WebhookSigner
from contracts.delivery import ClaimedDelivery
from gateway.alerts.config import AlertsConfig, DingTalkChannel, EmailChannel, WebhookChannel, WeComChannel
from gateway.alerts.notices import AnyChannel

SMTP_SENT = 250  # an accepted message, recorded as the attempt's status


def destination_of(channel: AnyChannel) -> DestinationConfig:
    """The lane of a channel: one message at a time (a channel reads its alerts in order)."""
    url = None if isinstance(channel, EmailChannel) else channel.url
    return DestinationConfig(name=channel.lane, url=url, sender="smtp" if url is None else "http",
                             timeout=channel.timeout, retry=channel.retry, concurrency=1, claim_batch=4)


def channel_lanes(config: AlertsConfig, environ: Mapping[str, str] | None = None
                  ) -> tuple[list[DestinationConfig], dict[str, Sender]]:
    """Every channel's destination and sender, its secrets read from the environment."""
    env = os.environ if environ is None else environ
    destinations, senders = [], {}
    for channel in config.channels:
        destination = destination_of(channel)
        destinations.append(destination)
        senders[destination.name] = sender_of(channel, destination, env)
    return destinations, senders


def sender_of(channel: AnyChannel, destination: DestinationConfig, env: Mapping[str, str]) -> Sender:
    if isinstance(channel, WebhookChannel):
        signer = WebhookSigner([s.strip() for s in env[channel.secret_env].split(",") if s.strip()])

        def sign(claim: ClaimedDelivery, now: datetime) -> Mapping[str, str]:
            return signer.sign(webhook_id(claim), now, claim.body)  # anew per attempt: a fresh timestamp

        return HttpSender(destination, header_hooks=[sign])
    if isinstance(channel, WeComChannel):
        return RobotSender(destination, {"key": env[channel.key_env].strip()})
    if isinstance(channel, DingTalkChannel):
        secret = env[channel.secret_env].strip() if channel.secret_env is not None else None
        return RobotSender(destination, {"access_token": env[channel.access_token_env].strip()}, sign_secret=secret)
    password = env[channel.password_env] if channel.password_env is not None else None
    return SmtpSender(channel, password)


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """钉钉 加签: base64 of HMAC-SHA256 over "timestamp\\nsecret" keyed by the secret, URL-encoded."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return urllib.parse.quote_plus(base64.b64encode(digest).decode("ascii"))


class RobotSender:
    """A group robot (企业微信, 钉钉): POST the JSON message; the robot answers 200 with an `errcode`, and only
    errcode 0 is a message posted. Any other errcode (a wrong key, a bad signature, too many messages) is
    recorded as `robot_errcode_<n>` and retried by the lane's policy."""

    def __init__(self, destination: DestinationConfig, query: Mapping[str, str], *,
                 sign_secret: str | None = None) -> None:
        assert destination.url is not None
        self.destination = destination
        self._url = str(httpx.URL(str(destination.url)).copy_merge_params(dict(query)))
        self._secret = sign_secret
        timeout = destination.timeout
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout.total, connect=timeout.connect),
                                         trust_env=False, follow_redirects=False)

    def url(self, now_ms: int) -> str:
        """The URL of one attempt; signed (timestamp, sign) when the robot has a secret."""
        if self._secret is None:
            return self._url
        return f"{self._url}&timestamp={now_ms}&sign={dingtalk_sign(self._secret, now_ms)}"

    async def send(self, claim: ClaimedDelivery) -> SendResult:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.destination.timeout.total):
                response = await self._client.post(self.url(time.time_ns() // 1_000_000), content=claim.body,
                                                   headers={"Content-Type": claim.content_type})
        except Exception as exc:
            return SendResult(status_code=None, error_class=error_class_of(exc),
                              body=truncate_body(f"{type(exc).__name__}: {exc}".encode()),
                              duration=time.monotonic() - started)
        body = truncate_body(response.content)
        duration = time.monotonic() - started
        if not 200 <= response.status_code < 300:
            return SendResult(status_code=response.status_code, body=body,
                              error_class=http_error_class(response.status_code), duration=duration)
        try:
            errcode = json.loads(response.content).get("errcode")
        except (ValueError, AttributeError):
            errcode = "unreadable"
        if errcode == 0:
            return SendResult(status_code=response.status_code, body=body, duration=duration)
        return SendResult(status_code=None, body=body, error_class=f"robot_errcode_{errcode}", duration=duration)

    async def aclose(self) -> None:
        await self._client.aclose()


class SmtpSender:
    """E-mail over SMTP (the standard library's client, on a thread). The recipients are the channel's, never
    the message's headers. A refusal is recorded as `smtp_<code>` and retried by the lane's policy."""

    def __init__(self, channel: EmailChannel, password: str | None) -> None:
        self.channel = channel
        self._password = password

    def _deliver(self, message: bytes) -> dict[str, tuple[int, bytes]]:
        c = self.channel
        timeout = c.timeout.total
        trusted = ssl.create_default_context(cafile=c.ca_file)  # the system's CAs, or only the channel's ca_file
        smtp = (smtplib.SMTP_SSL(c.host, c.port, timeout=timeout, context=trusted)
                if c.security == "tls" else smtplib.SMTP(c.host, c.port, timeout=timeout))
        with smtp:
            if c.security == "starttls":
                smtp.starttls(context=trusted)
            if c.username is not None and self._password is not None:
                smtp.login(c.username, self._password)
            refused: dict[str, tuple[int, bytes]] = smtp.sendmail(c.sender, list(c.to), message)
            return refused

    async def send(self, claim: ClaimedDelivery) -> SendResult:
        started = time.monotonic()
        try:
            refused = await asyncio.to_thread(self._deliver, claim.body)
        except smtplib.SMTPRecipientsRefused as err:
            return self._failed(f"smtp_{min(code for code, _ in err.recipients.values())}", repr(err.recipients),
                                started)
        except smtplib.SMTPResponseException as err:
            return self._failed(f"smtp_{err.smtp_code}", f"{err.smtp_code} {err.smtp_error!r}", started)
        except TimeoutError as exc:
            return self._failed(ErrorClass.TIMEOUT, f"{type(exc).__name__}: {exc}", started)
        except OSError as exc:  # refused, unreachable, TLS, dropped: retried
            return self._failed(ErrorClass.CONNECT_ERROR, f"{type(exc).__name__}: {exc}", started)
        except Exception as exc:
            return self._failed(ErrorClass.SENDER_ERROR, f"{type(exc).__name__}: {exc}", started)
        note = f"refused: {sorted(refused)}" if refused else "accepted"
        return SendResult(status_code=SMTP_SENT, body=note, duration=time.monotonic() - started)

    @staticmethod
    def _failed(error_class: str, detail: str, started: float) -> SendResult:
        return SendResult(status_code=None, error_class=error_class[:100], body=truncate_body(detail.encode()),
                          duration=time.monotonic() - started)

    async def aclose(self) -> None:
        return None
