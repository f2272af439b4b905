"""A live gateway with alert channels pointed at local stand-ins: 企业微信 and 钉钉 robots and a Standard Webhooks
receiver on one loopback HTTP server (each checking what the real one checks), and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks import Webhook

from gateway.alerts import load_alerts_config
from gateway.app import create_app
from gateway.runtime import Runtime
from gateway.store.redis import RedisStore
from simulators.peer import DEV_CREDENTIALS, serve_in_thread
from tests.e2e.e2e_support import free_port, wait_for
from tests.ops.ops_support import (
    CONFIG,
    PHONE_KEY,
    TOKENS,
    Receiver,
    base_settings,
    build_runtime,
    city_complaint,
    delivery_file_for,
    drop_namespace,
    make_store,
    receiver,
)

WECOM_KEY = "wecom-robot-key-3f9a"
DINGTALK_TOKEN = "dingtalk-access-token-77c1"
DINGTALK_SECRET = "SECd1n9ta1k5ecretf0rtest5"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"alerts-webhook-test-key-0123456").decode()
SMTP_USER = "hig-alerts@example.gov.cn"
SMTP_PASSWORD = "smtp-test-password-from-the-env"
ALERT_ENV = {"TEST_ALERT_WECOM_KEY": WECOM_KEY, "TEST_ALERT_DINGTALK_TOKEN": DINGTALK_TOKEN,
             "TEST_ALERT_DINGTALK_SECRET": DINGTALK_SECRET, "TEST_ALERT_WEBHOOK_SECRET": WEBHOOK_SECRET,
             "TEST_ALERT_SMTP_PASSWORD": SMTP_PASSWORD}


@dataclass
class Robots:
    """企业微信 and 钉钉 robots and a webhook receiver: each keeps what it accepted and what it refused (and why)."""

    url: str = ""
    wecom: list[dict[str, Any]] = field(default_factory=list)
    dingtalk: list[dict[str, Any]] = field(default_factory=list)
    webhook: list[dict[str, Any]] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    wecom_answer: int = 0  # the errcode the 企业微信 robot answers (45009: too many messages)
    lane_status: int = 503  # what the gateway's delivery lanes (/lanes/<name>) are answered
    lock: threading.Lock = field(default_factory=threading.Lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/lanes/{lane:path}")
        async def lane(lane: str, request: Request) -> JSONResponse:
            await request.body()
            ok = 200 <= self.lane_status < 300
            return JSONResponse({"national_registration_no": "1231552260120261206000001"} if ok else {"error": "x"},
                                status_code=self.lane_status)

        @app.post("/cgi-bin/webhook/send")
        async def wecom(request: Request) -> JSONResponse:
            body = json.loads(await request.body())
            if request.query_params.get("key") != WECOM_KEY:
                return self._refuse("wecom: wrong key", 93000)
            if body.get("msgtype") != "markdown" or not body.get("markdown", {}).get("content"):
                return self._refuse("wecom: not a markdown message", 40008)
            if self.wecom_answer:
                return self._refuse("wecom: busy", self.wecom_answer)
            with self.lock:
                self.wecom.append(body)
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        @app.post("/robot/send")
        async def dingtalk(request: Request) -> JSONResponse:
            body = json.loads(await request.body())
            q = request.query_params
            if q.get("access_token") != DINGTALK_TOKEN:
                return self._refuse("dingtalk: wrong token", 300001)
            # 加签, as the robot checks it: the timestamp within an hour, and the sign computed here by hand.
            timestamp = q.get("timestamp", "")
            if not timestamp.isdigit() or abs(time.time() * 1000 - int(timestamp)) > 3600_000:
                return self._refuse("dingtalk: timestamp", 310000)
            expected = base64.b64encode(hmac.new(DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(),
                                                 hashlib.sha256).digest()).decode()
            if q.get("sign") != expected:  # query_params are already URL-decoded
                return self._refuse("dingtalk: sign mismatch", 310000)
            if body.get("msgtype") != "markdown":
                return self._refuse("dingtalk: not markdown", 40035)
            with self.lock:
                self.dingtalk.append(body)
            return JSONResponse({"errcode": 0, "errmsg": "ok"})

        @app.post("/hooks/alerts")
        async def hook(request: Request) -> JSONResponse:
            raw = await request.body()
            try:
                Webhook(WEBHOOK_SECRET).verify(raw, dict(request.headers))
            except Exception as err:
                self._refuse(f"webhook: {err}", 0)
                return JSONResponse({"error": "bad signature"}, status_code=401)
            with self.lock:
                self.webhook.append(json.loads(raw))
            return JSONResponse({"ok": True})

        return app

    def _refuse(self, why: str, errcode: int) -> JSONResponse:
        with self.lock:
            self.refused.append(why)
        return JSONResponse({"errcode": errcode, "errmsg": why})


class Mailbox:
    """An aiosmtpd handler keeping every message with its envelope."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append((str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos], message))
        return "250 Message accepted for delivery"


@dataclass
class MailLogin:
    """What an SMTP server that speaks only over STARTTLS, with a self-signed certificate made for the test
    (`openssl`), and takes mail only from a logged-in user, needs; and the logins it saw (mechanism, user, password)."""

    cert: Path
    key: Path
    logins: list[tuple[str, str, str]] = field(default_factory=list)

    @classmethod
    def made_in(cls, folder: Path) -> MailLogin:
        folder.mkdir(parents=True)
        cert, key = folder / "smtp-cert.pem", folder / "smtp-key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True, timeout=60)
        return cls(cert, key)

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context

    def authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                     auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((mechanism, user, password))
        return AuthResult(success=(user, password) == (SMTP_USER, SMTP_PASSWORD), handled=False)

    def channel(self) -> dict[str, Any]:
        """The e-mail channel's keys for this server: STARTTLS, its certificate trusted, the user's password from
        the environment."""
        return {"security": "starttls", "ca_file": str(self.cert), "username": SMTP_USER,
                "password_env": "TEST_ALERT_SMTP_PASSWORD"}


@dataclass
class AlertWorld:
    gateway_url: str
    runtime: Runtime
    lanes: Receiver
    robots: Robots
    mailbox: Mailbox
    client: httpx.Client

    def get(self, path: str, role: str = "viewer", **params: Any) -> httpx.Response:
        return self.client.get(f"{self.gateway_url}{path}", params=params or None,
                               headers={"Authorization": f"Bearer {TOKENS[role]}"})

    def post(self, path: str, body: Any, role: str = "operator") -> httpx.Response:
        return self.client.post(f"{self.gateway_url}{path}", json=body,
                                headers={"Authorization": f"Bearer {TOKENS[role]}"})

    def alerts(self, state: str = "firing") -> list[dict[str, Any]]:
        response = self.get("/api/v1/alerts", state=state)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def push(self, no: str) -> str:
        response = self.client.post(
            f"{self.gateway_url}/api/v1/inbound/city-12345-rest/tickets",
            content=json.dumps(city_complaint(no), ensure_ascii=False).encode("utf-8"),
            headers={"Content-Type": "application/json; charset=utf-8",
                     "X-Api-Key": DEV_CREDENTIALS["PARTNER_CITY12345_API_KEY"]})
        assert response.status_code in (200, 201, 202), response.text
        ticket_id: str = response.json()["ticket_id"]
        return ticket_id

    def wait(self, what: str, check: Any, timeout: float = 60.0) -> Any:
        return wait_for(what, check, timeout, 0.1)


def alerts_file(tmp: Path, robots_url: str, smtp_port: int, *, mail_limit: int = 10,
                rules: dict[str, Any] | None = None, mail: dict[str, Any] | None = None) -> Path:
    """Alerts every 0.2 s to all four channels; the deadline rules off unless `rules` says otherwise."""
    data = {
        "evaluate_every": "0.2s", "resolve_after": 0, "repeat_after": "1h",
        "rules": rules if rules is not None else {"ticket_overdue": {"enabled": False},
                                                  "ticket_due_soon": {"enabled": False}},
        "channels": [
            {"name": "ops-webhook", "kind": "webhook", "url": f"{robots_url}/hooks/alerts",
             "secret_env": "TEST_ALERT_WEBHOOK_SECRET", "retry": {"backoff": "exponential", "initial_delay": "0.1s",
                                                                   "max_delay": "0.5s", "max_attempts": 50}},
            {"name": "ops-wecom", "kind": "wecom", "url": f"{robots_url}/cgi-bin/webhook/send",
             "key_env": "TEST_ALERT_WECOM_KEY", "retry": {"backoff": "exponential", "initial_delay": "0.1s",
                                                          "max_delay": "0.5s", "max_attempts": 50}},
            {"name": "ops-dingtalk", "kind": "dingtalk", "url": f"{robots_url}/robot/send",
             "access_token_env": "TEST_ALERT_DINGTALK_TOKEN", "secret_env": "TEST_ALERT_DINGTALK_SECRET"},
            {"name": "ops-mail", "kind": "email", "host": "127.0.0.1", "port": smtp_port, "security": "none",
             "sender": "hig-alerts@example.gov.cn", "to": ["duty@example.gov.cn", "lead@example.gov.cn"],
             "rate_limit": {"max_messages": mail_limit, "per": "1h"}, **(mail or {})},
        ],
    }
    path = tmp / "alerts.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@dataclass
class Receivers:
    """The channels' stand-ins, running for as long as a test needs them (across gateway restarts)."""

    robots: Robots
    mailbox: Mailbox
    smtp_port: int
    mail: dict[str, Any]  # the e-mail channel's keys for this SMTP server


@contextmanager
def alert_receivers(login: MailLogin | None = None) -> Iterator[Receivers]:
    """The stand-ins; the SMTP server plain and open, or with `login` over STARTTLS and only to its user."""
    with ExitStack() as stack:
        robots = Robots()
        robots.url = stack.enter_context(serve_in_thread(robots.app(), name="alert-robots"))
        mailbox = Mailbox()
        if login is None:
            smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
        else:
            smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port(), tls_context=login.tls_context(),
                              require_starttls=True, auth_required=True, auth_require_tls=True,
                              authenticator=login.authenticate)
        smtp.start()
        stack.callback(smtp.stop)
        yield Receivers(robots, mailbox, smtp.port, {} if login is None else login.channel())


def flaky_delivery_file(tmp: Path, url: str, *, breaker: dict[str, Any] | None = None) -> Path:
    """config/delivery.yaml with every lane sent to `url`/<lane>, retried quickly; `breaker` for every lane."""
    data = yaml.safe_load((CONFIG / "delivery.yaml").read_text(encoding="utf-8"))
    data["engine"] = {"reaper_interval": "1s", "stop_grace": "1s", "idle_poll_min": 0.05, "idle_poll_max": 0.2}
    for destination in data["destinations"]:
        destination["url"] = f"{url}/{destination['name']}"
        destination["retry"] = {"backoff": "exponential", "initial_delay": "0.1s", "max_delay": "0.3s",
                                "max_attempts": 500, "max_age": "1h"}
        if breaker is not None:
            destination["breaker"] = breaker
    path = tmp / "delivery-flaky.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@contextmanager
def running_alert_world(tmp: Path, *, mail_limit: int = 10, store_kind: str = "sqlite", namespace: str | None = None,
                        receivers: Receivers | None = None, delivery_file: Path | None = None,
                        adapters_dir: Path | None = None, pollers: bool = False,
                        rules: dict[str, Any] | None = None, redis_url: str | None = None,
                        echo_behind_after_seconds: int | None = None) -> Iterator[AlertWorld]:
    """The gateway (API, workers, alert monitor) served by uvicorn on loopback. Unless `delivery_file` says
    otherwise, every delivery lane goes to one receiver that refuses (400: dead letters) until told to accept."""
    with pytest.MonkeyPatch.context() as patch, ExitStack() as stack:
        for name, value in ALERT_ENV.items():
            patch.setenv(name, value)
        if namespace is None:  # a Redis namespace of this world's own, dropped at the end
            namespace = f"test-alerts-{uuid.uuid4().hex[:12]}"
            if store_kind == "redis":
                stack.callback(lambda: asyncio.run(drop_namespace(str(namespace))))
        lanes = stack.enter_context(receiver())
        lanes.accept = False
        if receivers is None:
            receivers = stack.enter_context(alert_receivers())
        settings = base_settings(tmp, store_kind=store_kind, workers=True, adapters_dir=adapters_dir,
                                 delivery_file=delivery_file or delivery_file_for(tmp, lanes.url),
                                 echo_behind_after_seconds=echo_behind_after_seconds)
        settings = settings.model_copy(update={"pollers": pollers})
        if redis_url is not None:
            settings = settings.model_copy(update={"store": settings.store.model_copy(update={"redis_url": redis_url})})
        alerts = load_alerts_config(alerts_file(tmp, receivers.robots.url, receivers.smtp_port, mail_limit=mail_limit,
                                                rules=rules, mail=receivers.mail))
        store = (RedisStore(redis_url, PHONE_KEY, namespace=namespace) if redis_url is not None
                 else make_store(store_kind, tmp, namespace))
        runtime = build_runtime(settings, store)  # the demo's components, with this world's alerts
        runtime.live = dataclasses.replace(runtime.live, components=dataclasses.replace(runtime.components,
                                                                                        alerts=alerts))
        app = create_app(settings, runtime=runtime)
        url = stack.enter_context(serve_in_thread(app, name="alerts-gateway", startup_timeout=30))
        client = stack.enter_context(httpx.Client(timeout=10, trust_env=False))
        yield AlertWorld(gateway_url=url, runtime=runtime, lanes=lanes, robots=receivers.robots,
                         mailbox=receivers.mailbox, client=client)


class CuttableProxy:
    """A loopback TCP proxy in front of Redis that can be cut (every connection dropped, new ones closed at once) and
    restored: the store becomes unreachable for real, as when the network to it fails. The port stays the proxy's
    throughout, so nothing else on the machine can take it in between."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 6379)) -> None:
        self.target = target
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._cut = False
        threading.Thread(target=self._accept, name="redis-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def restore(self) -> None:
        with self._lock:
            self._cut = False

    def close(self) -> None:
        self.cut()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                cut = self._cut
            if cut:
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                sink.shutdown(socket.SHUT_RDWR)
