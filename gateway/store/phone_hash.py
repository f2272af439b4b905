"""Keyed hash of phone numbers, so tickets are found by phone without any index holding the number."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
import unicodedata
from pathlib import Path

from contracts.identifiers import IdentifierError, normalize_phone
from gateway.store.errors import PhoneKeyMismatch

__all__ = ["KEY_ENV", "KEY_FILE", "PhoneKeyMismatch", "hash_phone", "key_fingerprint", "load_phone_hash_key"]

log = logging.getLogger(__name__)

KEY_ENV = "HIG_PHONE_HASH_KEY"
KEY_FILE = "phone-hash.key"


def hash_phone(phone: str, key: bytes, *, normalized: bool = False) -> str:
    """HMAC-SHA256 of the number in E.164 form, hex; the same number in any written form hashes alike.

    `normalized=True` skips parsing (slow: ~80 µs) for a phone a validated Ticket already holds in E.164.
    """
    if normalized:
        return hmac.new(key, phone.encode("utf-8"), hashlib.sha256).hexdigest()
    try:
        canonical = normalize_phone(phone)
    except IdentifierError:
        # A number the contract would refuse still gets a stable hash, so a search never crashes.
        canonical = "".join(ch for ch in unicodedata.normalize("NFKC", phone) if ch.isdigit() or ch == "+")
    return hmac.new(key, canonical.encode("ascii", "ignore"), hashlib.sha256).hexdigest()


def key_fingerprint(key: bytes) -> str:
    """Tells keys apart without revealing them: HMAC-SHA256 of a constant under the key, hex."""
    return hmac.new(key, b"hotline-interop-gateway phone-hash key fingerprint", hashlib.sha256).hexdigest()


def load_phone_hash_key(data_dir: Path) -> bytes:
    """The key from HIG_PHONE_HASH_KEY, else from <data_dir>/phone-hash.key (made on first use, mode 0600).

    Every gateway sharing one store must use the same key, or a search by phone misses what others
    stored: on Redis with several machines, set the environment variable on each of them.
    """
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return from_env.encode("utf-8")
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32).encode("ascii")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key)
    log.warning("made a new phone hash key", extra={"path": str(path)})
    return key
