"""Ops users and roles: bearer tokens checked against salted hashes (or environment secrets) from ops-users.yaml."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from adapters.secrets import resolve_secret
from contracts.yamldoc import load_yaml_model

log = logging.getLogger(__name__)

USERS_FILE = "ops-users.yaml"
SCRYPT_PREFIX = "scrypt"
SHA256_PREFIX = "sha256:"
# scrypt at n=2**14, r=8 costs ~16 MB and tens of milliseconds: slow for a guesser, and a verified token
# is remembered (by its SHA-256) so the dashboard's refreshes do not pay it again.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_SCRYPT_MAXMEM = 64 * 1024 * 1024
_REMEMBERED = 256


class Role(StrEnum):
    """What an ops user may do; each role may do everything the roles before it may."""

    VIEWER = "viewer"  # sees status and tickets, personal data masked
    OPERATOR = "operator"  # also replays deliveries and re-maps quarantined payloads
    ADMIN = "admin"  # also reloads configuration and reads the audit log

    @property
    def rank(self) -> int:
        return _RANKS[self]

    @property
    def label(self) -> str:
        return _LABELS[self]

    def may(self, required: Role) -> bool:
        return self.rank >= required.rank


_RANKS = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}
_LABELS = {Role.VIEWER: "查看员", Role.OPERATOR: "操作员", Role.ADMIN: "管理员"}

UserId = Annotated[str, Field(min_length=1, max_length=48, pattern=r"^[a-z0-9][a-z0-9_.\-]*$")]
EnvName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Z_][A-Z0-9_]*$")]


class OpsUserConfig(BaseModel):
    """One ops user. The token is never in the file: either its salted hash, or the name of a variable holding it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: UserId
    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    role: Role
    token_hash: Annotated[str, Field(min_length=10, max_length=300)] | None = None
    token_env: EnvName | None = None

    @field_validator("token_hash")
    @classmethod
    def _readable_hash(cls, value: str | None) -> str | None:
        if value is not None:
            parse_token_hash(value)  # a malformed hash is a configuration error, named at load
        return value

    @model_validator(mode="after")
    def _one_token_source(self) -> OpsUserConfig:
        if (self.token_hash is None) == (self.token_env is None):
            raise ValueError("give exactly one of token_hash (from `python main.py ops hash-token`) or token_env")
        return self


class OpsUsersFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[OpsUserConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> OpsUsersFile:
        seen: set[str] = set()
        for user in self.users:
            if user.id in seen:
                raise ValueError(f"user id {user.id!r} is listed twice")
            seen.add(user.id)
        return self


@dataclass(frozen=True)
class OpsUser:
    """An authenticated ops user."""

    id: str
    role: Role
    name: str | None = None

    @property
    def display(self) -> str:
        return self.name or self.id

    def may(self, required: Role) -> bool:
        return self.role.may(required)


# -- token hashes ---------------------------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_token(token: str, *, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$hash` of a token: what ops-users.yaml keeps instead of the token."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(token.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P,
                            maxmem=_SCRYPT_MAXMEM, dklen=32)
    return f"{SCRYPT_PREFIX}${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


@dataclass(frozen=True)
class TokenHash:
    """A parsed token hash: scrypt with its parameters and salt, or a plain SHA-256 (for long random tokens)."""

    scheme: str
    digest: bytes
    salt: bytes = b""
    n: int = 0
    r: int = 0
    p: int = 0

    def verify(self, token: str) -> bool:
        data = token.encode("utf-8")
        if self.scheme == SCRYPT_PREFIX:
            candidate = hashlib.scrypt(data, salt=self.salt, n=self.n, r=self.r, p=self.p,
                                       maxmem=_SCRYPT_MAXMEM, dklen=len(self.digest))
        else:
            candidate = hashlib.sha256(data).digest()
        return hmac.compare_digest(candidate, self.digest)


def parse_token_hash(text: str) -> TokenHash:
    """A token hash from its text; ValueError saying what form is expected."""
    if text.startswith(SHA256_PREFIX):
        try:
            digest = bytes.fromhex(text[len(SHA256_PREFIX):])
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ValueError(f"{SHA256_PREFIX} must be followed by 64 hex digits")
        return TokenHash("sha256", digest)
    parts = text.split("$")
    if len(parts) != 6 or parts[0] != SCRYPT_PREFIX:
        raise ValueError("a token hash is scrypt$N$r$p$salt$hash (from `python main.py ops hash-token`) "
                         f"or {SHA256_PREFIX}<64 hex digits>")
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError as err:
        raise ValueError(f"scrypt token hash cannot be read: {err}") from err
    if n < 2**12 or n & (n - 1) or not 1 <= r <= 32 or not 1 <= p <= 16 or len(salt) < 8 or len(digest) < 16:
        raise ValueError("scrypt token hash: N must be a power of two >= 4096, r 1-32, p 1-16, salt >= 8 bytes")
    return TokenHash(SCRYPT_PREFIX, digest, salt, n, r, p)


# -- authentication ---------------------------------------------------------------------------------------

class Authenticator:
    """Finds the ops user a presented token belongs to."""

    def __init__(self, users: list[tuple[OpsUser, list[TokenHash]]], source: str = "") -> None:
        self.users = users
        self.source = source
        self._remembered: OrderedDict[bytes, OpsUser] = OrderedDict()
        self._lock = threading.Lock()  # FastAPI runs the (blocking) check on its thread pool

    @classmethod
    def from_file(cls, path: Path, data_dir: Path) -> Authenticator:
        """Users of `path`; a missing file means no ops user at all (every ops request is refused)."""
        if not path.is_file():
            log.warning("no ops users file: the ops API and dashboard refuse everyone", extra={"path": str(path)})
            return cls([], str(path))
        config = load_yaml_model(path, OpsUsersFile)
        users: list[tuple[OpsUser, list[TokenHash]]] = []
        for entry in config.users:
            user = OpsUser(id=entry.id, role=entry.role, name=entry.name)
            if entry.token_hash is not None:
                hashes = [parse_token_hash(entry.token_hash)]
            else:
                assert entry.token_env is not None
                # Unset in the environment: a development token under <data>/secrets/ops-token-<id>.
                tokens = resolve_secret(entry.token_env, data_dir, f"ops-token-{entry.id}")
                hashes = [TokenHash("sha256", hashlib.sha256(t.encode("utf-8")).digest()) for t in tokens]
            users.append((user, hashes))
        return cls(users, str(path))

    def recognised(self, token: str) -> OpsUser | None:
        """The user of a token already seen to be valid, without checking its hash again."""
        key = hashlib.sha256(token.encode("utf-8")).digest()
        with self._lock:
            known = self._remembered.get(key)
            if known is not None:
                self._remembered.move_to_end(key)
            return known

    def authenticate(self, token: str | None) -> OpsUser | None:
        if not token:
            return None
        known = self.recognised(token)
        if known is not None:
            return known
        key = hashlib.sha256(token.encode("utf-8")).digest()
        found: OpsUser | None = None
        for user, hashes in self.users:
            # Every hash is checked, even after a match, so timing does not tell which user matched.
            if any([h.verify(token) for h in hashes]) and found is None:
                found = user
        if found is not None:
            with self._lock:
                self._remembered[key] = found
                if len(self._remembered) > _REMEMBERED:
                    self._remembered.popitem(last=False)
        return found
