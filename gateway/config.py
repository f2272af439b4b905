"""Gateway configuration: one YAML file, overridable by HIG_* environment variables, checked at load."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from contracts.ticket import RegionCode
from contracts.yamldoc import KeyPath, YamlFileError, load_yaml_model
from gateway.errors import GatewayError

_SOURCE_CONFIG = Path(__file__).resolve().parent.parent / "config" / "gateway.yaml"
# Run from a checkout, the checkout's config; installed (`pip install .`, the `hig` command), config/ where it runs.
DEFAULT_CONFIG = _SOURCE_CONFIG if _SOURCE_CONFIG.exists() else Path("config") / "gateway.yaml"
ENV_PREFIX = "HIG_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerSettings(_Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=1, le=65535)] = 8315
    max_body_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    # The whole request body must arrive within this, or the answer is 408 (a stalled or trickled body).
    body_timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 30.0


class RegionSettings(_Section):
    """The region this gateway serves; its code is the root of the organisation table."""

    code: RegionCode  # a GB/T 2260 region, checked as adapters' region codes are
    name: str


class StoreTimeouts(_Section):
    """How long the gateway waits on its store, whichever it is (docs/operations.md, "When the store stalls").

    Each store applies them as its client allows: Redis as the socket connect and read/write timeouts, SQLite
    `operation_seconds` as its busy timeout (how long a write waits for another process's lock). /readyz waits
    at most `connect_seconds` + 2 × `operation_seconds` for the store's answer (a read and a write)."""

    connect_seconds: Annotated[float, Field(gt=0, le=60)] = 2.0
    operation_seconds: Annotated[float, Field(gt=0, le=120)] = 5.0


class StoreSettings(_Section):
    kind: Literal["sqlite", "redis", "postgres"] = "sqlite"
    timeouts: StoreTimeouts = Field(default_factory=StoreTimeouts)
    sqlite_file: str = "gateway.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Acknowledge an intake only once Redis has it in its AOF on disk (WAITAOF 1 0, Redis 7.2+): for a Redis with
    # appendfsync everysec, which otherwise may lose about a second of acknowledged intakes on a power loss.
    redis_wait_aof: bool = False
    # PostgreSQL: the database, the schema the gateway's tables live in (made if missing), and the connection pool
    # (a request waits at most `postgres_pool_timeout_seconds` for a free connection, then fails with StoreBusy).
    postgres_url: str = "postgresql://127.0.0.1:5432/hig"
    postgres_schema: Annotated[str, Field(pattern=r"^[a-z_][a-z0-9_]{0,39}$")] = "hig"
    postgres_pool_size: Annotated[int, Field(ge=2, le=200)] = 10
    postgres_pool_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    # Delivered deliveries older than this lose their bodies (copies of what was sent); None keeps them all.
    compact_delivered_after_days: Annotated[int, Field(ge=1)] | None = None


class LoggingSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_lines: bool = True


class DeadlineSettings(_Section):
    rules_file: str = "deadline-rules.yaml"
    calendar_overrides: str = "calendar-overrides.yaml"
    due_soon_working_days: Annotated[int, Field(ge=0, le=30)] = 2


class LinkSettings(_Section):
    """Cross-line duplicate linking at intake (docs/links.md): which earlier tickets are candidates, and the score
    above which a candidate is linked."""

    enabled: bool = True
    window_days: Annotated[int, Field(ge=1, le=365)] = 30  # candidates received this many days apart at most
    threshold: Annotated[float, Field(ge=0.3, le=1.0)] = 0.6  # link at or above this score (0–1)
    time_weight: Annotated[float, Field(ge=0.0, le=0.5)] = 0.15  # the share of closeness in time in the score
    candidates: Annotated[int, Field(ge=1, le=200)] = 20  # the newest candidates scored per ticket
    max_links: Annotated[int, Field(ge=1, le=50)] = 5  # a new ticket links to at most this many, best first


class EchoSettings(_Section):
    """The sender's echo (事事有回音): how long a partner may go without hearing its ticket's latest status before
    the ticket is listed on the dashboard's panel, the ops API and the metric."""

    behind_after_seconds: Annotated[int, Field(ge=1, le=30 * 86400)] = 3600
    panel_limit: Annotated[int, Field(ge=1, le=500)] = 50  # rows on the dashboard's panel


class NationalSettings(_Section):
    """The link to the national 12315 platform; its credentials come from the environment."""

    token_env: str = "HIG_NATIONAL_TOKEN"  # noqa: S105 - the name of the variable, not a token
    status_secrets_env: str = "HIG_NATIONAL_STATUS_SECRETS"  # whsec_ secrets of signed status events
    status_tolerance_seconds: Annotated[int, Field(ge=30, le=3600)] = 300


class CreditLookupSettings(_Section):
    """Enrich a respondent from the credit system by USCC, without holding the ticket up."""

    url: str | None = None  # with {uscc}, e.g. http://127.0.0.1:8414/api/credit/{uscc}; None: no look-up
    timeout_seconds: Annotated[float, Field(gt=0, le=10)] = 0.5
    api_key_env: str | None = None


class DemoSettings(_Section):
    """Start the simulators in-process, so `python main.py` is a whole demo on loopback."""

    simulators: bool = False
    # Give every unset partner credential a generated value under the data dir (never in production).
    generate_credentials: bool = False
    national_port: int = 8316
    national_auto_advance_seconds: Annotated[float, Field(gt=0)] = 3.0


class GatewaySettings(BaseSettings):
    """Everything the gateway reads at start-up. Relative paths are relative to the config file."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid")

    config_dir: Path = DEFAULT_CONFIG.parent
    config_file: Path | None = None  # the file these settings were read from (load_settings sets it)
    data_dir: Path = Path("data")
    server: ServerSettings = Field(default_factory=ServerSettings)
    region: RegionSettings
    store: StoreSettings = Field(default_factory=StoreSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    deadlines: DeadlineSettings = Field(default_factory=DeadlineSettings)
    echo: EchoSettings = Field(default_factory=EchoSettings)
    adapters_dir: str = "adapters"
    delivery_file: str = "delivery.yaml"
    routing_file: str = "routing.yaml"
    jurisdiction_file: str = "jurisdiction.yaml"  # the jurisdiction screen's rules (accept / return / review)
    links: LinkSettings = Field(default_factory=LinkSettings)
    alerts_file: str | None = None  # alert rules and channels (alerts.yaml); None: the rules' defaults, no channels
    national: NationalSettings = Field(default_factory=NationalSettings)
    credit_lookup: CreditLookupSettings = Field(default_factory=CreditLookupSettings)
    workers: bool = True  # run the delivery workers inside the API process
    pollers: bool = True  # run the partner pollers inside the API process
    demo: DemoSettings = Field(default_factory=DemoSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment overrides the file, so one file serves every deployment.
        return (env_settings, init_settings)

    def resolve(self, relative: str | Path) -> Path:
        """A path from the configuration, taken relative to the config file's folder."""
        path = Path(relative)
        return path if path.is_absolute() else self.config_dir / path

    @property
    def sqlite_path(self) -> Path:
        return self.resolved_data_dir / self.store.sqlite_file

    @property
    def resolved_data_dir(self) -> Path:
        # The data directory is relative to where the gateway runs, like ./data in the README.
        return self.data_dir if self.data_dir.is_absolute() else Path.cwd() / self.data_dir


class ConfigError(GatewayError, YamlFileError):
    """A gateway configuration that cannot be used; every problem names file, line and key."""


def load_settings(path: Path | None = None) -> GatewaySettings:
    """Read and check the gateway configuration; raise ConfigError naming file, line and key."""
    file = (path or DEFAULT_CONFIG).resolve()

    def env_hint(key: KeyPath) -> str:
        return f" (or environment variable {ENV_PREFIX}{'__'.join(str(p) for p in key).upper()})"

    try:
        defaults = {"config_dir": str(file.parent), "config_file": str(file)}
        return load_yaml_model(file, GatewaySettings, defaults=defaults, hint=env_hint)
    except YamlFileError as err:
        raise ConfigError(err.problems) from err
