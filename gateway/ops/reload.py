"""Live reload: the configuration read and checked in full, and what of it only a restart applies."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.config import AdapterConfig
from gateway.config import GatewaySettings
from gateway.ops.access import Authenticator
from gateway.runtime import Components, Runtime, load_components, own_file

# What a reload applies while the gateway runs; transports and lanes need a restart (restart_required).
RELOADED = ("adapters", "mapping_specs", "routing", "jurisdiction_rules", "deadline_rules", "calendar", "ops_users")


@dataclass(frozen=True)
class Configuration:
    """Everything a reload applies, read and checked, not yet in force."""

    components: Components
    auth: Authenticator
    file: GatewaySettings | None  # the gateway's own file read again (a reload applies none of it)


async def read_configuration(runtime: Runtime, users_file: Path) -> Configuration:
    """Adapters, mapping specs, routing, deadline rules, calendar and ops users, read again off the event loop
    and checked against the running lanes; every error names its file, line and key."""
    settings = runtime.settings
    components = await asyncio.to_thread(load_components, settings)
    runtime.check(components)
    auth = await asyncio.to_thread(Authenticator.from_file, users_file, settings.resolved_data_dir)
    return Configuration(components, auth, await asyncio.to_thread(own_file, settings))


def restart_required(running: Components, new: Components, started_file: GatewaySettings | None = None,
                     file_now: GatewaySettings | None = None, *, workers_apart: bool = False) -> list[str]:
    """What differs between the configuration the transports and lanes run on (`running`, as started) and the one
    read now, that only a restart applies: an adapter's transport (or the adapter itself), the lanes, the alerts
    (rules and channels), and any section of the gateway's own file that changed since start (`started_file` against
    `file_now`: server, store, links, echo… run as started; `gateway.yaml:<section>`). Every such change is listed
    on every reload until a restart, not only on the reload that first saw it.

    `workers_apart`: the delivery workers run in `hig worker` processes (`workers: false`), which judge a reporter
    notice met or missed, when its callback is delivered, by the deadline rules and calendar of their own start:
    a change to either is named `hig worker:<file>` (the gateway itself applies it at once)."""
    restart: list[str] = []
    if started_file is not None and file_now is not None:
        started = started_file.model_dump(exclude={"config_dir", "config_file"})
        now = file_now.model_dump(exclude={"config_dir", "config_file"})
        name = (started_file.config_file or Path("gateway.yaml")).name
        restart += [f"{name}:{section}" for section in sorted(started) if started[section] != now.get(section)]
    for adapter_id in sorted(set(running.adapter_configs) | set(new.adapter_configs)):
        before, after = running.adapter_configs.get(adapter_id), new.adapter_configs.get(adapter_id)
        if before is None or after is None or _transport(before) != _transport(after):
            restart.append(f"adapter:{adapter_id}")
    if running.delivery != new.delivery:
        restart.append("delivery")
    if running.alerts != new.alerts:  # the monitor and the channels' lanes run as started
        restart.append("alerts")
    if workers_apart:
        deadlines = running.settings.deadlines
        if running.rules != new.rules:
            restart.append(f"hig worker:{Path(deadlines.rules_file).name}")
        if running.calendar.overrides != new.calendar.overrides:
            restart.append(f"hig worker:{Path(deadlines.calendar_overrides).name}")
    return restart


def _transport(config: AdapterConfig) -> dict[str, Any]:
    """What of an adapter's configuration only a restart applies (all but its mapping spec and description)."""
    return config.model_dump(exclude={"mapping_spec", "description"})
