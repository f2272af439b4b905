"""Adapter configuration: one YAML file per partner in config/adapters/, checked at load naming file, line and key."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from adapters.destination import PositiveDuration, RetryPolicy, TimeoutConfig
from adapters.errors import AdapterError
from contracts.ticket import RegionCode, SystemId

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ADAPTERS_DIR = REPO_ROOT / "config" / "adapters"
DEFAULT_MAPPING_SPECS_DIR = REPO_ROOT / "mapping" / "specs"
# `mapping_spec: canonical` means the partner already sends the national standard: no mapping, only validation.
CANONICAL_MAPPING = "canonical"
API_KEY_DIGEST_PREFIX = "sha256:"
MAX_HMAC_TOLERANCE_SECONDS = 300

# Adapter ids become part of lane names (`callback:<id>`, at most 64 characters) and of URLs.
AdapterId = Annotated[str, Field(min_length=1, max_length=48, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
EnvName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Z_][A-Z0-9_]*$")]
JsonPath = Annotated[str, Field(min_length=1, max_length=200)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MissingCredential(AdapterError, RuntimeError):
    """An adapter names an environment variable for a credential, and the environment does not set it."""


def read_env(name: str, purpose: str) -> str:
    """The value of a credential's environment variable; MissingCredential saying which and what for."""
    value = os.environ.get(name, "").strip()
    if not value:
        raise MissingCredential(f"environment variable {name} is not set; it holds {purpose}")
    return value


class AuthConfig(_Section):
    """Credentials, always by environment variable name: the repository never holds a credential's value.

    Inbound (a partner pushing to us): `api_key_env` names a variable holding the partner's key, or
    `sha256:<hex>` of it so that a deployment need not hold the key itself; `hmac_secret_env` names a
    variable holding the shared secret of an `X-Signature` HMAC-SHA256 over "timestamp.body".
    Outbound (us polling the partner): `outbound_api_key_env` is sent in `outbound_api_key_header`.
    """

    api_key_env: EnvName | None = None
    hmac_secret_env: EnvName | None = None
    hmac_tolerance_seconds: Annotated[int, Field(ge=1, le=MAX_HMAC_TOLERANCE_SECONDS)] = MAX_HMAC_TOLERANCE_SECONDS
    outbound_api_key_env: EnvName | None = None
    outbound_api_key_header: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")] = (
        "X-Api-Key"
    )

    @property
    def accepts_pushes(self) -> bool:
        return self.api_key_env is not None or self.hmac_secret_env is not None

    def api_key_digest(self) -> bytes | None:
        """SHA-256 of the partner's API key (None when no key is configured); MissingCredential if unset."""
        if self.api_key_env is None:
            return None
        value = read_env(self.api_key_env, "a partner's inbound API key")
        if value.startswith(API_KEY_DIGEST_PREFIX):
            digest = value[len(API_KEY_DIGEST_PREFIX):]
            try:
                raw = bytes.fromhex(digest)
            except ValueError as err:
                raise MissingCredential(f"environment variable {self.api_key_env}: {API_KEY_DIGEST_PREFIX} "
                                        "must be followed by 64 hex digits") from err
            if len(raw) != hashlib.sha256().digest_size:
                raise MissingCredential(f"environment variable {self.api_key_env}: {API_KEY_DIGEST_PREFIX} "
                                        "must be followed by 64 hex digits")
            return raw
        return hashlib.sha256(value.encode("utf-8")).digest()

    def hmac_secret(self) -> bytes | None:
        if self.hmac_secret_env is None:
            return None
        return read_env(self.hmac_secret_env, "a partner's inbound HMAC secret").encode("utf-8")

    def outbound_headers(self) -> dict[str, str]:
        if self.outbound_api_key_env is None:
            return {}
        return {self.outbound_api_key_header: read_env(self.outbound_api_key_env, "the key we present to the partner")}


def digest_matches(presented_key: str, digest: bytes) -> bool:
    """Constant-time comparison of a presented API key with a configured key digest."""
    return hmac.compare_digest(hashlib.sha256(presented_key.encode("utf-8")).digest(), digest)


class PollBackoff(_Section):
    """How long a poller waits after the partner failed: initial, times factor per failure, up to max."""

    initial: PositiveDuration = 5.0
    factor: Annotated[float, Field(ge=1.0, le=10.0)] = 2.0
    max: PositiveDuration = 300.0
    jitter_percent: Annotated[float, Field(ge=0, lt=100)] = 20.0

    @model_validator(mode="after")
    def _initial_within_max(self) -> PollBackoff:
        if self.initial > self.max:
            raise ValueError("backoff.initial must not exceed backoff.max")
        return self


class PollConfig(_Section):
    """Pulling from a partner: where (`url` for REST, `operation` for SOAP), how often, how many at once."""

    url: AnyHttpUrl | None = None
    operation: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    interval_seconds: PositiveDuration = 60.0
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 50
    initial_cursor: Annotated[str, Field(max_length=200)] | None = None
    backoff: PollBackoff = Field(default_factory=PollBackoff)
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig)
    # The lock that keeps one poller per adapter across gateway processes; it must outlive one poll.
    lock_ttl_seconds: PositiveDuration | None = None

    @model_validator(mode="after")
    def _somewhere_to_poll(self) -> PollConfig:
        if self.url is None and self.operation is None:
            raise ValueError("poll needs a url (REST) or an operation (SOAP)")
        if self.lock_ttl_seconds is not None and self.lock_ttl_seconds <= self.timeout.total * 2:
            raise ValueError("poll.lock_ttl_seconds must exceed twice poll.timeout.total")
        return self

    @property
    def lock_ttl(self) -> float:
        if self.lock_ttl_seconds is not None:
            return self.lock_ttl_seconds
        return max(60.0, self.timeout.total * 4)


class CallbackConfig(_Section):
    """Status write-back: the partner's callback URL (REST) or operation (SOAP), signing secret, retries.

    The URL is only ever taken from here, never from a request: a pushed ticket cannot redirect callbacks.
    `secret_env` names a variable holding one or more `whsec_` secrets separated by commas, the current
    one first (key rotation: the partner verifies with either while both are listed).
    """

    url: AnyHttpUrl | None = None
    operation: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    secret_env: EnvName | None = None
    timeout: TimeoutConfig = Field(default_factory=TimeoutConfig)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    # One at a time by default: a ticket's statuses then reach the partner in the order they happened
    # (a retried one can still be overtaken by the next status; the partner sees the sequence in the key).
    concurrency: Annotated[int, Field(ge=1, le=100)] = 1

    @model_validator(mode="after")
    def _somewhere_to_call(self) -> CallbackConfig:
        if self.url is None and self.operation is None:
            raise ValueError("callback needs a url (REST) or an operation (SOAP)")
        return self

    def secrets(self) -> list[str]:
        """The signing secrets, current first; MissingCredential when the variable is unset."""
        if self.secret_env is None:
            return []
        value = read_env(self.secret_env, "the whsec_ secret(s) callbacks are signed with")
        return value.replace(",", " ").split()


class AdapterConfig(_Section):
    """One partner adapter. A regional system is this file plus a mapping spec, not code."""

    id: AdapterId
    kind: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_\-]*$")]
    partner_system: SystemId  # becomes source.source_system of every ticket it brings
    region_code: RegionCode
    mapping_spec: Annotated[str, Field(min_length=1, max_length=300)]  # a spec name, a path, or `canonical`
    enabled: bool = True
    description: Annotated[str, Field(max_length=500)] | None = None
    auth: AuthConfig = Field(default_factory=AuthConfig)
    push: bool = False
    poll: PollConfig | None = None
    callback: CallbackConfig | None = None
    options: dict[str, Any] = Field(default_factory=dict)  # for the kind; checked by its options model

    _source_file: Path | None = PrivateAttr(default=None)
    _mapping_spec_path: Path | None = PrivateAttr(default=None)

    @field_validator("push")
    @classmethod
    def _pushes_are_authenticated(cls, push: bool, info: ValidationInfo) -> bool:
        auth = info.data.get("auth")
        if push and isinstance(auth, AuthConfig) and not auth.accepts_pushes:
            raise ValueError("an adapter that takes pushes needs auth.api_key_env or auth.hmac_secret_env")
        return push

    @property
    def source_file(self) -> Path | None:
        """The YAML file this configuration was loaded from (None when built in code)."""
        return self._source_file

    @property
    def is_canonical(self) -> bool:
        """The partner sends tickets already in the national standard; they are validated, not mapped."""
        return self.mapping_spec == CANONICAL_MAPPING

    @property
    def mapping_spec_path(self) -> Path | None:
        """The mapping spec file: a bare name is looked up in mapping/specs/, a path is relative to this file."""
        if self.is_canonical:
            return None
        if self._mapping_spec_path is not None:
            return self._mapping_spec_path
        return resolve_mapping_spec(self.mapping_spec, None, DEFAULT_MAPPING_SPECS_DIR)

    @property
    def callback_lane(self) -> str:
        return callback_lane(self.id)


def callback_lane(adapter_id: str) -> str:
    """The delivery lane (destination name) of an adapter's status callbacks."""
    return f"callback:{adapter_id}"


def resolve_mapping_spec(value: str, folder: Path | None, specs_dir: Path) -> Path:
    if "/" in value or value.endswith((".yaml", ".yml")):
        path = Path(value)
        return path if path.is_absolute() else (folder or Path.cwd()) / path
    return specs_dir / f"{value}.yaml"


class AdapterConfigError(AdapterError, ValueError):
    """Adapter configuration that cannot be used; every problem names file, line and key."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems
