"""The demo's peers: the national platform and every partner simulator the demo configuration talks to."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from adapters.config import AdapterConfig

log = logging.getLogger(__name__)


def _port(url: object) -> int | None:
    return urlsplit(str(url)).port if url else None


def _adapter_port(config: AdapterConfig) -> int | None:
    urls: list[Any] = [config.callback.url if config.callback else None, config.poll.url if config.poll else None,
                       config.options.get("wsdl")]
    return next((p for p in map(_port, urls) if p), None)


def _partner_simulators(adapter_configs: Mapping[str, AdapterConfig], gateway_url: str
                        ) -> list[AbstractContextManager[Any]]:
    from simulators.city12345.app import run_in_thread as city
    from simulators.credit.app import run_in_thread as credit
    from simulators.emergency.app import run_in_thread as emergency
    from simulators.enforcement.app import run_in_thread as enforcement
    from simulators.legacy.app import run_in_thread as legacy
    from simulators.province12345.app import Province12345
    from simulators.province12345.runner import run_in_thread as province

    starters: dict[str, Any] = {"city-12345-rest": city, "credit-supervision": credit,
                                "emergency-command": emergency, "enforcement-case": enforcement,
                                "legacy-registration": legacy}
    found: list[AbstractContextManager[Any]] = []
    for adapter_id, config in adapter_configs.items():
        port = _adapter_port(config)
        if port is None:
            continue
        if adapter_id in starters:
            pushes = {"gateway_url": gateway_url} if config.push else {}
            found.append(starters[adapter_id](port=port, **pushes))
        elif adapter_id == "province-12345-soap":
            wsse = config.options.get("wsse") or {}
            state = Province12345(username=wsse.get("username"), password=os.environ.get(wsse.get("password_env", "")))
            state.seed_fixtures()
            found.append(province(state, port=port))
    return found


@asynccontextmanager
async def run_demo_simulators(*, gateway_url: str, adapter_configs: Mapping[str, AdapterConfig], national_port: int,
                              status_secrets: Sequence[str], national_token: str, region_code: str,
                              auto_advance_seconds: float) -> AsyncIterator[None]:
    """Serve every simulator the demo configuration talks to, for as long as the gateway runs."""
    from simulators.national.runner import run_national_simulator

    with ExitStack() as stack:
        national = run_national_simulator(
            port=national_port,
            gateway_status_url=f"{gateway_url}/api/v1/national/status",
            secrets=list(status_secrets),
            token=national_token,
            region_code=region_code,
            auto_advance_seconds=auto_advance_seconds,
        )
        for simulator in [national, *_partner_simulators(adapter_configs, gateway_url)]:
            await asyncio.to_thread(stack.enter_context, simulator)
        log.info("demo simulators running", extra={"national": f"http://127.0.0.1:{national_port}"})
        yield
