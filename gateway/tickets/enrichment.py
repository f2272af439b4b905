"""Credit enrichment: the credit system's lists (经营异常, 严重违法失信) added to a respondent, never holding it up."""

from __future__ import annotations

import logging
import time

import httpx

from contracts.ticket import Ticket

log = logging.getLogger(__name__)

_FLAG_MAX = 50
_CACHE_SECONDS = 600.0


class CreditEnricher:
    """Looks a respondent's USCC up within a small time budget; any failure leaves the ticket as it was.

    Answers are cached for a while per USCC, and after a failure the look-up pauses for a cool-down,
    so an unreachable credit system costs intake one timeout per cool-down, not one per ticket.
    """

    def __init__(self, url_template: str, *, timeout_seconds: float, headers: dict[str, str] | None = None,
                 cool_down_seconds: float = 30.0, client: httpx.AsyncClient | None = None) -> None:
        if "{uscc}" not in url_template:
            raise ValueError("the credit look-up URL must contain {uscc}")
        self.url_template = url_template
        self.cool_down_seconds = cool_down_seconds
        self._client = client or httpx.AsyncClient(timeout=httpx.Timeout(timeout_seconds), headers=headers or {},
                                                   follow_redirects=False, trust_env=False)
        self._cache: dict[str, tuple[float, list[str]]] = {}
        self._paused_until = 0.0
        self.failures = 0

    async def __call__(self, ticket: Ticket) -> Ticket:
        uscc = ticket.respondent.uscc
        if uscc is None:
            return ticket
        flags = await self._flags(uscc)
        if not flags:
            return ticket
        merged = sorted({*ticket.respondent.credit_flags, *flags})
        return ticket.model_copy(update={"respondent": ticket.respondent.model_copy(update={"credit_flags": merged})})

    async def _flags(self, uscc: str) -> list[str]:
        now = time.monotonic()
        cached = self._cache.get(uscc)
        if cached is not None and cached[0] > now:
            return cached[1]
        if now < self._paused_until:
            return []
        try:
            response = await self._client.get(self.url_template.format(uscc=uscc))
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as err:
            self.failures += 1
            self._paused_until = now + self.cool_down_seconds
            log.warning("credit look-up failed; ticket goes on without it", extra={"error": type(err).__name__})
            return []
        raw = document.get("flags") if isinstance(document, dict) else None
        flags = [str(f)[:50] for f in raw[:_FLAG_MAX]] if isinstance(raw, list) else []
        self._cache[uscc] = (now + _CACHE_SECONDS, flags)
        return flags

    async def aclose(self) -> None:
        await self._client.aclose()
