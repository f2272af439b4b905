"""The alerts configuration (alerts.yaml): when each rule fires, where alerts go, how often; checked at load."""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator

from adapters.destination import Duration, PositiveDuration, RetryPolicy, TimeoutConfig
from contracts.yamldoc import YamlDocument, YamlDocumentError, YamlFileError, parse_yaml
from gateway.errors import GatewayError

Severity = Literal["info", "warning", "critical"]
SEVERITY_RANK: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}
RuleName = Literal["dead_letters", "lane_waiting", "sender_silent", "breaker_open", "ticket_overdue",
                   "ticket_due_soon", "quarantine_growing", "poller_failing", "store_unreachable"]
EnvName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Z_][A-Z0-9_]*$")]
ChannelKind = Literal["webhook", "wecom", "dingtalk", "email"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Rule(_Section):
    enabled: bool = True


class DeadLettersRule(_Rule):
    """A lane holds at least `min_count` dead letters (deliveries given up, waiting for a replay)."""

    severity: Severity = "critical"
    min_count: Annotated[int, Field(ge=1)] = 1


class LaneWaitingRule(_Rule):
    """A lane's oldest undelivered delivery (pending, retrying or in flight) has waited longer than `older_than`.
    A partner's status-callback lanes are left to `sender_silent`, which tells per ticket what the partner heard."""

    severity: Severity = "warning"
    older_than: PositiveDuration = 900.0


class SenderSilentRule(_Rule):
    """At least `min_count` tickets of one partner whose newest status it has not heard (no delivered callback) for
    longer than the gateway's echo.behind_after_seconds: the sender's echo (事事有回音) says it is not hearing back."""

    severity: Severity = "warning"
    min_count: Annotated[int, Field(ge=1)] = 1


class BreakerRule(_Rule):
    """A lane's circuit breaker is open (or half-open, probing): the receiver keeps failing."""

    severity: Severity = "critical"


class OverdueRule(_Rule):
    """At least `min_count` open tickets are past a statutory time limit."""

    severity: Severity = "critical"
    min_count: Annotated[int, Field(ge=1)] = 1


class DueSoonRule(_Rule):
    """At least `min_count` open tickets are due within deadlines.due_soon_working_days."""

    severity: Severity = "warning"
    min_count: Annotated[int, Field(ge=1)] = 1


class QuarantineRule(_Rule):
    """An adapter has at least `min_open` payloads in quarantine, not yet re-mapped."""

    severity: Severity = "warning"
    min_open: Annotated[int, Field(ge=1)] = 5


class PollerRule(_Rule):
    """A pulling adapter's poller failed `consecutive_failures` times in a row."""

    severity: Severity = "critical"
    consecutive_failures: Annotated[int, Field(ge=1)] = 5


class StoreRule(_Rule):
    """The store could not be reached by `failed_checks` checks in a row (told once it is reachable again)."""

    severity: Severity = "critical"
    failed_checks: Annotated[int, Field(ge=1)] = 2


class Rules(_Section):
    dead_letters: DeadLettersRule = Field(default_factory=DeadLettersRule)
    lane_waiting: LaneWaitingRule = Field(default_factory=LaneWaitingRule)
    sender_silent: SenderSilentRule = Field(default_factory=SenderSilentRule)
    breaker_open: BreakerRule = Field(default_factory=BreakerRule)
    ticket_overdue: OverdueRule = Field(default_factory=OverdueRule)
    ticket_due_soon: DueSoonRule = Field(default_factory=DueSoonRule)
    quarantine_growing: QuarantineRule = Field(default_factory=QuarantineRule)
    poller_failing: PollerRule = Field(default_factory=PollerRule)
    store_unreachable: StoreRule = Field(default_factory=StoreRule)


class ChannelRateLimit(_Section):
    """At most `max_messages` messages per `per` on one channel; alerts held back go in the next one allowed."""

    max_messages: Annotated[int, Field(ge=1)] = 10
    per: PositiveDuration = 3600.0


# Alerts matter for a day: a channel that cannot be reached for longer dead-letters them (and that is an alert).
ALERT_RETRY = RetryPolicy(backoff="schedule", schedule=(10.0, 60.0, 300.0, 1800.0, 7200.0), max_attempts=20,
                          max_age=86400.0)


class _Channel(_Section):
    name: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    rules: tuple[RuleName, ...] | None = None  # None: every rule
    min_severity: Severity = "info"
    rate_limit: ChannelRateLimit = Field(default_factory=ChannelRateLimit)
    timeout: TimeoutConfig = Field(default_factory=lambda: TimeoutConfig(connect=5.0, total=15.0))
    retry: RetryPolicy = ALERT_RETRY

    @property
    def lane(self) -> str:
        return f"alert:{self.name}"

    def wants(self, rule: str, severity: str) -> bool:
        wanted = self.rules is None or rule in self.rules
        return wanted and SEVERITY_RANK[severity] >= SEVERITY_RANK[self.min_severity]

    def secret_variables(self) -> dict[str, str]:
        """Key of this channel → the environment variable it names, for the variables that must be set."""
        return {}


class WebhookChannel(_Channel):
    """A generic receiver: JSON events signed as Standard Webhooks (webhook-id, -timestamp, -signature)."""

    kind: Literal["webhook"]
    url: AnyHttpUrl
    secret_env: EnvName  # whsec_… secrets, comma-separated for rotation

    def secret_variables(self) -> dict[str, str]:
        return {"secret_env": self.secret_env}


class WeComChannel(_Channel):
    """A 企业微信 group robot: markdown messages to its webhook URL, whose `key` comes from the environment."""

    kind: Literal["wecom"]
    url: AnyHttpUrl = AnyHttpUrl("https://qyapi.weixin.qq.com/cgi-bin/webhook/send")
    key_env: EnvName

    def secret_variables(self) -> dict[str, str]:
        return {"key_env": self.key_env}


class DingTalkChannel(_Channel):
    """A 钉钉 custom robot: markdown messages to its webhook; with `secret_env`, the signed-URL option (加签)."""

    kind: Literal["dingtalk"]
    url: AnyHttpUrl = AnyHttpUrl("https://oapi.dingtalk.com/robot/send")
    access_token_env: EnvName
    secret_env: EnvName | None = None  # SEC… secret of 加签: timestamp and sign are added to the URL

    def secret_variables(self) -> dict[str, str]:
        found = {"access_token_env": self.access_token_env}
        if self.secret_env is not None:
            found["secret_env"] = self.secret_env
        return found


class EmailChannel(_Channel):
    """E-mail over SMTP: plain-text messages from `sender` to `to`."""

    kind: Literal["email"]
    host: Annotated[str, Field(min_length=1)]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    security: Literal["none", "starttls", "tls"] = "starttls"
    username: str | None = None
    password_env: EnvName | None = None
    sender: Annotated[str, Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")]
    to: Annotated[tuple[Annotated[str, Field(pattern=r"^[^@\s<>,]+@[^@\s<>,]+$")], ...], Field(min_length=1)]
    subject_prefix: str = "[12315网关告警]"
    # PEM certificates to trust for the server instead of the system's (a private CA, a self-signed server);
    # relative to the alerts file's folder, checked when it is loaded.
    ca_file: Annotated[str, Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _login_whole(self) -> EmailChannel:
        if (self.username is None) != (self.password_env is None):
            raise ValueError("username and password_env go together: set both to log in, or neither")
        if self.ca_file is not None and self.security == "none":
            raise ValueError("ca_file is for a server spoken to over TLS: set security to starttls or tls")
        return self

    def secret_variables(self) -> dict[str, str]:
        return {"password_env": self.password_env} if self.password_env is not None else {}


Channel = Annotated[WebhookChannel | WeComChannel | DingTalkChannel | EmailChannel, Field(discriminator="kind")]


class AlertsConfig(_Section):
    """What alerts.yaml says: the monitor's timing, each rule's threshold, the channels."""

    evaluate_every: PositiveDuration = 30.0  # how often the rules are evaluated
    resolve_after: Duration = 60.0  # a condition must be gone this long before its alert is resolved
    repeat_after: PositiveDuration = 3600.0  # a firing alert whose count grew is told again at most this often
    rules: Rules = Field(default_factory=Rules)
    channels: tuple[Channel, ...] = ()

    @model_validator(mode="after")
    def _unique_channels(self) -> AlertsConfig:
        names = [c.name for c in self.channels]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"channel names must be unique: {', '.join(duplicates)}")
        return self


class AlertsConfigError(GatewayError, YamlFileError):
    """An alerts file that cannot be used; every problem names file, line and key."""


_KINDS = frozenset({"webhook", "wecom", "dingtalk", "email"})


def _key_path(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    # A channel's errors carry its kind as a step of the path (the union's tag); the file has no such key.
    if len(loc) > 2 and loc[0] == "channels" and loc[2] in _KINDS:
        return (*loc[:2], *loc[3:])
    return loc


def load_alerts_config(path: Path, environ: Mapping[str, str] | None = None) -> AlertsConfig:
    """Read and check an alerts file, and that the environment sets every secret its channels name."""
    file = path.resolve()
    try:
        document = parse_yaml(file.read_text(encoding="utf-8"), str(file))
    except OSError as err:
        raise AlertsConfigError([f"{file}: cannot read the alerts configuration: {err.strerror or err}"]) from err
    except YamlDocumentError as err:
        raise AlertsConfigError([str(err)]) from err
    config = _with_ca_files(_validate(document), document, file.parent)
    env = os.environ if environ is None else environ
    missing = [str(document.error(("channels", i, key), f"environment variable {variable} is not set"))
               for i, channel in enumerate(config.channels)
               for key, variable in channel.secret_variables().items() if not env.get(variable, "").strip()]
    if missing:
        raise AlertsConfigError(missing)
    return config


def _with_ca_files(config: AlertsConfig, document: YamlDocument, folder: Path) -> AlertsConfig:
    """Each e-mail channel's ca_file made absolute (relative to `folder`) and read as TLS would read it, so a missing
    or unreadable certificate file is a configuration error at load rather than a failed message later."""
    problems: list[str] = []
    channels: list[WebhookChannel | WeComChannel | DingTalkChannel | EmailChannel] = []
    for i, channel in enumerate(config.channels):
        if isinstance(channel, EmailChannel) and channel.ca_file is not None:
            path = (folder / channel.ca_file).resolve()
            try:
                ssl.create_default_context(cafile=str(path))
            except OSError as err:  # missing, unreadable, or no PEM certificate in it (ssl.SSLError)
                problems.append(str(document.error(("channels", i, "ca_file"),
                                                   f"{path} is not a readable PEM certificate file: {err}")))
            channel = channel.model_copy(update={"ca_file": str(path)})
        channels.append(channel)
    if problems:
        raise AlertsConfigError(problems)
    return config.model_copy(update={"channels": tuple(channels)})


def _validate(document: YamlDocument) -> AlertsConfig:
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise AlertsConfigError([str(document.error((), "the alerts configuration must be a mapping"))])
    try:
        return AlertsConfig.model_validate(data)
    except ValidationError as err:
        problems = [str(document.error(_key_path(tuple(d["loc"])), d["msg"])) for d in err.errors(include_url=False)]
        raise AlertsConfigError(problems) from err
