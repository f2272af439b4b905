"""Standard Webhooks signing and verification (HMAC-SHA256 over "id.timestamp.body") with key rotation."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets as _random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from ulid import ULID

from adapters.errors import AdapterError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

FailureReason = Literal[
    "missing_header",
    "invalid_timestamp",
    "timestamp_too_old",
    "timestamp_too_new",
    "no_matching_signature",
]


class WebhookSecretError(AdapterError, ValueError):
    """A configured secret is not `whsec_` followed by non-empty base64."""


class WebhookVerificationError(AdapterError):
    """A webhook was refused; `reason` is a stable code a caller can branch on, `message` says why in Chinese (for
    the sender reading the answer) and `message_en` in English (for logs)."""

    def __init__(self, reason: FailureReason, message_en: str, *, zh: str) -> None:
        super().__init__(message_en)
        self.reason: FailureReason = reason
        self.message = zh
        self.message_en = message_en


@dataclass(frozen=True)
class VerifiedWebhook:
    """What a verified webhook tells beyond its body: its id (stable across retries) and when it was signed."""

    msg_id: str
    timestamp: int
    key_index: int  # which of the verifier's secrets matched; > 0 means the sender still uses an older key


def decode_secret(secret: str) -> bytes:
    """The key bytes of a `whsec_<base64>` secret (unpadded base64 is accepted, as the reference does)."""
    if not secret.startswith(SECRET_PREFIX):
        raise WebhookSecretError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :].strip()
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as err:
        raise WebhookSecretError(f"a webhook secret is {SECRET_PREFIX} followed by base64: {err}") from err
    if not key:
        raise WebhookSecretError("a webhook secret may not be empty")
    return key


def generate_secret(num_bytes: int = 32) -> str:
    """A fresh random secret in the `whsec_<base64>` form."""
    return SECRET_PREFIX + base64.b64encode(_random.token_bytes(num_bytes)).decode("ascii")


def new_message_id() -> str:
    """A unique webhook-id; keep it for every retry of the same message so receivers can dedupe."""
    return f"msg_{ULID()}"


def _keys(secrets: Sequence[str]) -> list[bytes]:
    if isinstance(secrets, str) or not secrets:
        raise WebhookSecretError("give a non-empty list of webhook secrets, the current one first")
    return [decode_secret(s) for s in secrets]


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def _unix_seconds(value: int | float | datetime) -> int:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            # A naive datetime is ambiguous (the reference library silently reads it as UTC); refuse it.
            raise ValueError("webhook timestamps must be timezone-aware datetimes or unix seconds")
        return math.floor(value.timestamp())
    return math.floor(value)


class WebhookSigner:
    """Signs with every active secret, current first, so a receiver holding either the old or new key verifies.

    Rotation: add the new secret in front, let receivers pick it up, then drop the old one from the list.
    """

    def __init__(self, secrets: Sequence[str]) -> None:
        self._keys = _keys(secrets)

    def signature(self, msg_id: str, timestamp: int | float | datetime, body: bytes | str) -> str:
        """The webhook-signature header value: space-separated `v1,<base64>`, one per active secret."""
        ts = _unix_seconds(timestamp)
        payload = _as_bytes(body)
        return " ".join(
            f"{SIGNATURE_VERSION},{base64.b64encode(_signature(key, msg_id, ts, payload)).decode('ascii')}"
            for key in self._keys
        )

    def sign(
        self, msg_id: str, timestamp: int | float | datetime | None, body: bytes | str
    ) -> dict[str, str]:
        """The three Standard Webhooks headers for `body`; `timestamp` None means now (sign each attempt anew)."""
        if not msg_id or "." in msg_id or any(c.isspace() for c in msg_id):
            raise ValueError("a webhook-id is non-empty and has no dots or whitespace")
        ts = _unix_seconds(time.time() if timestamp is None else timestamp)
        return {
            HEADER_ID: msg_id,
            HEADER_TIMESTAMP: str(ts),
            HEADER_SIGNATURE: self.signature(msg_id, ts, body),
        }


class WebhookVerifier:
    """Verifies a webhook against any of the active secrets within a timestamp tolerance."""

    def __init__(self, secrets: Sequence[str], tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS) -> None:
        if tolerance_seconds < 0:
            raise ValueError("tolerance_seconds cannot be negative")
        self._keys = _keys(secrets)
        self.tolerance_seconds = tolerance_seconds

    def verify(
        self,
        headers: Mapping[str, str],
        body: bytes | str,
        now: int | float | datetime | None = None,
    ) -> VerifiedWebhook:
        """Check headers and signature of `body` (the exact bytes received); raise WebhookVerificationError."""
        lowered = {k.lower(): v for k, v in headers.items()}
        missing = [h for h in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE) if not lowered.get(h)]
        if missing:
            raise WebhookVerificationError("missing_header", f"missing header(s): {', '.join(missing)}",
                                           zh=f"缺少签名头：{'、'.join(missing)}")
        msg_id = lowered[HEADER_ID]
        raw_ts = lowered[HEADER_TIMESTAMP].strip()
        if not raw_ts.isascii() or not raw_ts.isdigit():
            raise WebhookVerificationError(
                "invalid_timestamp", f"{HEADER_TIMESTAMP} must be integer unix seconds, got {raw_ts[:32]!r}",
                zh=f"{HEADER_TIMESTAMP} 应为整数 Unix 秒，收到的是 {raw_ts[:32]!r}",
            )
        timestamp = int(raw_ts)
        current = _unix_seconds(time.time() if now is None else now)
        if timestamp < current - self.tolerance_seconds:
            raise WebhookVerificationError(
                "timestamp_too_old",
                f"{HEADER_TIMESTAMP} is {current - timestamp} s old; tolerance is {self.tolerance_seconds} s",
                zh=f"{HEADER_TIMESTAMP} 已过去 {current - timestamp} 秒，允许 {self.tolerance_seconds} 秒",
            )
        if timestamp > current + self.tolerance_seconds:
            raise WebhookVerificationError(
                "timestamp_too_new",
                f"{HEADER_TIMESTAMP} is {timestamp - current} s in the future; tolerance is "
                f"{self.tolerance_seconds} s",
                zh=f"{HEADER_TIMESTAMP} 比当前时间晚 {timestamp - current} 秒，允许 {self.tolerance_seconds} 秒",
            )
        offered = self._offered_signatures(lowered[HEADER_SIGNATURE])
        payload = _as_bytes(body)
        for index, key in enumerate(self._keys):
            expected = _signature(key, msg_id, timestamp, payload)
            # Compare against every offered signature without stopping early on a match per key.
            if any(hmac.compare_digest(expected, candidate) for candidate in offered):
                return VerifiedWebhook(msg_id=msg_id, timestamp=timestamp, key_index=index)
        raise WebhookVerificationError(
            "no_matching_signature",
            f"no {SIGNATURE_VERSION} signature in {HEADER_SIGNATURE} matches any of the "
            f"{len(self._keys)} active secret(s)",
            zh=f"{HEADER_SIGNATURE} 中没有与 {len(self._keys)} 个有效密钥之一相符的 {SIGNATURE_VERSION} 签名",
        )

    @staticmethod
    def _offered_signatures(header: str) -> list[bytes]:
        """Decodable v1 signatures; other versions and malformed entries are ignored, as the spec asks."""
        found: list[bytes] = []
        for part in header.split():
            version, sep, encoded = part.partition(",")
            if not sep or version != SIGNATURE_VERSION:
                continue
            try:
                found.append(base64.b64decode(encoded, validate=True))
            except binascii.Error:
                continue
        return found
