"""The demo: national and partner simulators on loopback beside the gateway, with generated credentials."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractContextManager, ExitStack, asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from adapters.config import AdapterConfig
from gateway.config import GatewaySettings
from gateway.runtime import Runtime, national_status_secrets, national_token
from gateway.secrets import resolve_secret
from gateway.webhooks import generate_secret

log = logging.getLogger(__name__)


def credential_variables(config: BaseModel) -> Iterator[tuple[str, bool]]:
    """Every environment variable an adapter file names for a credential, and whether it is a webhook secret."""
    for name, value in config:
        if isinstance(value, BaseModel):
            yield from credential_variables(value)
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict) and isinstance(item.get("password_env"), str):
                    yield item["password_env"], False
                elif key.endswith("_env") and isinstance(item, str):
                    yield item, False
        elif name.endswith("_env") and isinstance(value, str):
            yield value, name == "secret_env"


def ensure_demo_credentials(settings: GatewaySettings, adapters: dict[str, AdapterConfig]) -> list[str]:
    """Give every unset partner credential a generated value kept under the data dir; the names set.

    The demo's simulators read the same environment, so both sides agree without any value in the repo.
    """
    names: list[str] = []
    for config in adapters.values():
        for variable, webhook in credential_variables(config):
            if os.environ.get(variable):
                continue
            value = resolve_secret(variable, settings.resolved_data_dir, variable.lower(),
                                   generate=generate_secret if webhook else None)
            os.environ[variable] = ",".join(value)
            names.append(variable)
    return names


def _port(url: object) -> int | None:
    return urlsplit(str(url)).port if url else None


def _adapter_port(config: AdapterConfig) -> int | None:
    urls: list[Any] = [config.callback.url if config.callback else None, config.poll.url if config.poll else None,
                       config.options.get("wsdl")]
    return next((p for p in map(_port, urls) if p), None)


def _partner_simulators(runtime: Runtime, gateway_url: str) -> list[AbstractContextManager[Any]]:
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
    for adapter_id, config in runtime.components.adapter_configs.items():
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
async def run_demo_simulators(settings: GatewaySettings, runtime: Runtime) -> AsyncIterator[None]:
    """Serve every simulator the demo configuration talks to, for as long as the gateway runs."""
    from simulators.national.runner import run_national_simulator

    gateway_url = f"http://{settings.server.host}:{settings.server.port}"
    with ExitStack() as stack:
        national = run_national_simulator(
            port=settings.demo.national_port,
            gateway_status_url=f"{gateway_url}/api/v1/national/status",
            secrets=national_status_secrets(settings),
            token=national_token(settings),
            region_code=settings.region.code,
            auto_advance_seconds=settings.demo.national_auto_advance_seconds,
        )
        for simulator in [national, *_partner_simulators(runtime, gateway_url)]:
            await asyncio.to_thread(stack.enter_context, simulator)
        log.info("demo simulators running", extra={"national": f"http://127.0.0.1:{settings.demo.national_port}"})
        yield
