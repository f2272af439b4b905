"""WS-Security UsernameToken with PasswordDigest: verifying a request's token and writing one for a call."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from lxml import etree

from adapters.wire.envelope import SoapFault

WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_PROFILE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
PASSWORD_DIGEST = f"{_PROFILE}#PasswordDigest"
PASSWORD_TEXT = f"{_PROFILE}#PasswordText"
BASE64_BINARY = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
SECURITY = f"{{{WSSE}}}Security"

# remember_nonce(nonce, ttl_seconds) -> True the first time, False for a replay.
NonceRegistry = Callable[[str, float], Awaitable[bool]]


@dataclass(frozen=True)
class UsernameTokenPolicy:
    """Who may call and how fresh a token must be."""

    username: str
    password: str
    max_age_seconds: float = 300.0  # a Created older than this is stale
    future_skew_seconds: float = 60.0  # a Created this far ahead of our clock is still taken
    # How a Created without an offset is read: UTC, as WS-Security requires; a partner whose clock writes Beijing
    # wall-clock time without "+08:00" is configured with timedelta(hours=8).
    zoneless_offset: timedelta = timedelta(0)

    @property
    def nonce_ttl_seconds(self) -> float:
        # After this long the Created check refuses the message anyway, so the nonce may be forgotten.
        return self.max_age_seconds + self.future_skew_seconds


def password_digest(nonce: bytes, created: str, password: str) -> str:
    """Base64(SHA-1(nonce + created + password)), as the UsernameToken Profile 1.0 defines it."""
    digest = hashlib.sha1(nonce + created.encode("utf-8") + password.encode("utf-8")).digest()  # noqa: S324
    return base64.b64encode(digest).decode("ascii")


def username_token(username: str, password: str, *, nonce: bytes | None = None,
                   created: datetime | str | None = None) -> etree._Element:
    """A wsse:Security header block with a digest UsernameToken, as a partner sends it (the tests' partner; the
    gateway's own calls use zeep's UsernameToken)."""
    nonce = os.urandom(16) if nonce is None else nonce
    if created is None:
        created = datetime.now(UTC)
    created_text = created if isinstance(created, str) else created.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    security = etree.Element(SECURITY, nsmap={"wsse": WSSE, "wsu": WSU})
    token = etree.SubElement(security, f"{{{WSSE}}}UsernameToken")
    etree.SubElement(token, f"{{{WSSE}}}Username").text = username
    etree.SubElement(token, f"{{{WSSE}}}Password", Type=PASSWORD_DIGEST).text = password_digest(
        nonce, created_text, password)
    etree.SubElement(token, f"{{{WSSE}}}Nonce", EncodingType=BASE64_BINARY).text = base64.b64encode(nonce).decode()
    etree.SubElement(token, f"{{{WSU}}}Created").text = created_text
    return security


def _failed(reason: str, zh: str) -> SoapFault:
    return SoapFault.client(f"wsse:FailedAuthentication: the security token could not be authenticated ({reason})",
                            zh=f"wsse:FailedAuthentication: 安全令牌未通过认证（{zh}）")


def _text(element: etree._Element | None) -> str | None:
    if element is None:
        return None
    return (element.text or "").strip()


def parse_created(text: str, zoneless_offset: timedelta = timedelta(0)) -> datetime:
    """A wsu:Created value as an aware datetime; one without an offset is UTC, as WS-Security requires, unless the
    partner's `zoneless_offset` says otherwise."""
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC if not zoneless_offset else timezone(zoneless_offset))


async def verify_username_token(header: etree._Element | None, policy: UsernameTokenPolicy,
                                remember_nonce: NonceRegistry, *, now: datetime | None = None) -> str:
    """The authenticated username, or a Client Fault: missing token, wrong digest, stale Created, replayed nonce.

    The digest is checked before the nonce is remembered, so requests that fail authentication
    cannot fill the nonce registry or burn a nonce a legitimate caller is about to use.
    """
    security = header.find(SECURITY) if header is not None else None
    if security is None:
        raise SoapFault.client("wsse:InvalidSecurity: the request has no wsse:Security header; a UsernameToken "
                               "with a PasswordDigest, Nonce and wsu:Created is required",
                               zh="wsse:InvalidSecurity: 请求没有 wsse:Security 头；须带 UsernameToken"
                                  "（密码摘要 PasswordDigest、Nonce 和 wsu:Created）")
    token = security.find(f"{{{WSSE}}}UsernameToken")
    if token is None:
        raise SoapFault.client("wsse:InvalidSecurity: the wsse:Security header holds no wsse:UsernameToken",
                               zh="wsse:InvalidSecurity: wsse:Security 头中没有 wsse:UsernameToken")
    username = _text(token.find(f"{{{WSSE}}}Username"))
    password = token.find(f"{{{WSSE}}}Password")
    nonce_text = _text(token.find(f"{{{WSSE}}}Nonce"))
    created_text = _text(token.find(f"{{{WSU}}}Created"))
    if not username or password is None:
        raise _failed("Username and Password are required", "必须有 Username 和 Password")
    if password.get("Type", PASSWORD_TEXT) != PASSWORD_DIGEST:
        raise _failed("a PasswordDigest is required; a clear-text password is not accepted",
                      "须用密码摘要 PasswordDigest，不接受明文密码")
    if not nonce_text or not created_text:
        raise _failed("a PasswordDigest needs a Nonce and a wsu:Created", "密码摘要须同时带 Nonce 和 wsu:Created")
    encoding = token.find(f"{{{WSSE}}}Nonce").get("EncodingType", BASE64_BINARY)  # type: ignore[union-attr]
    if encoding != BASE64_BINARY:
        raise _failed(f"Nonce EncodingType {encoding!r} is not supported; use Base64Binary",
                      f"不支持 Nonce 的编码 EncodingType {encoding!r}，请用 Base64Binary")
    try:
        nonce = base64.b64decode(nonce_text, validate=True)
    except (binascii.Error, ValueError):
        raise _failed("the Nonce is not base64", "Nonce 不是 base64 编码") from None
    try:
        created = parse_created(created_text, policy.zoneless_offset)
    except ValueError:
        raise SoapFault.client(f"wsu:MessageExpired: wsu:Created {created_text!r} is not an xsd:dateTime",
                               zh=f"wsu:MessageExpired: wsu:Created {created_text!r} 不是 xsd:dateTime 时间") from None
    expected = password_digest(nonce, created_text, policy.password)
    user_ok = hmac.compare_digest(username.encode("utf-8"), policy.username.encode("utf-8"))
    digest_ok = hmac.compare_digest((_text(password) or "").encode("utf-8"), expected.encode("ascii"))
    if not (user_ok and digest_ok):
        raise _failed("unknown username or wrong password digest", "用户名不存在或密码摘要不正确")
    now = now or datetime.now(UTC)
    if created < now - timedelta(seconds=policy.max_age_seconds):
        raise SoapFault.client(f"wsu:MessageExpired: stale Created {created_text}: a token is accepted for "
                               f"{policy.max_age_seconds:g} s after it was created",
                               zh=f"wsu:MessageExpired: Created {created_text} 已过期：令牌在创建后 "
                                  f"{policy.max_age_seconds:g} 秒内有效")
    if created > now + timedelta(seconds=policy.future_skew_seconds):
        raise SoapFault.client(f"wsu:MessageExpired: Created {created_text} is in the future beyond the "
                               f"{policy.future_skew_seconds:g} s allowed for clock skew",
                               zh=f"wsu:MessageExpired: Created {created_text} 晚于网关当前时间，超出允许的 "
                                  f"{policy.future_skew_seconds:g} 秒时钟偏差")
    if not await remember_nonce(nonce_text, policy.nonce_ttl_seconds):
        raise _failed(f"nonce replayed: this Nonce was already used within the last {policy.nonce_ttl_seconds:g} s",
                      f"Nonce 重复：此 Nonce 在最近 {policy.nonce_ttl_seconds:g} 秒内已用过")
    return username
