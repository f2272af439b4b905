"""The real gateway in its own process (`python main.py -c <tmp>/gateway.yaml`) on a free loopback port.

A copy of the demo configuration goes to a temporary folder; every partner URL in it is pointed at a port
the test chooses (a simulator it runs) or at a closed port, never at the demo's fixed ports, which another
test or a developer's demo may be using. Credentials are generated the way the demo generates them
(`adapters.secrets.ensure_demo_credentials`) without touching this process's environment.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from adapters.loading import load_adapters
from adapters.secrets import credential_variables, ensure_demo_credentials
from adapters.wire.webhooks import generate_secret
from gateway.config import load_settings

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "config"
CITY = "city-12345-rest"
PROVINCE = "province-12345-soap"
# The fixed ports of the demo configuration, by what listens there in the demo.
DEMO_PORTS = {8316: "national", 8317: "province", 8411: "city", 8412: "legacy", 8413: "enforcement",
              8414: "credit", 8415: "emergency"}
_URL_PORT = re.compile(r"(https?://(?:127\.0\.0\.1|localhost)):(\d{2,5})")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused at once)."""
    return free_port()


def cpu_seconds(pid: int) -> float:
    """The CPU time (user and system) a process has used so far: what work costs it, however loaded the machine."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="ascii").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in KiB: its resident memory now and at its peak so far."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found["VmRSS"], found["VmHWM"]


@dataclass
class GatewayFiles:
    """A gateway configuration in a temporary folder, and the environment its processes need."""

    root: Path
    port: int
    env: dict[str, str]
    credentials: dict[str, str]
    ops_tokens: dict[str, str]

    @property
    def config_dir(self) -> Path:
        return self.root / "config"

    @property
    def gateway_yaml(self) -> Path:
        return self.config_dir / "gateway.yaml"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inbound(self, adapter_id: str = CITY) -> str:
        return f"{self.url}/api/v1/inbound/{adapter_id}/tickets"

    def soap(self, adapter_id: str = PROVINCE) -> str:
        return f"{self.url}/soap/{adapter_id}"


def _demo_credentials(gateway_yaml: Path) -> dict[str, str]:
    """Every partner credential the adapters name, generated under the data dir as the demo does; this
    process's environment is left as it was."""
    settings = load_settings(gateway_yaml)
    configs = load_adapters(settings.resolve(settings.adapters_dir))
    saved = dict(os.environ)
    try:
        for config in configs.values():  # generate ours, whatever the developer's shell exports
            for variable, _ in credential_variables(config):
                os.environ.pop(variable, None)
        ensure_demo_credentials(settings.resolved_data_dir, configs)
        return {variable: os.environ[variable] for config in configs.values()
                for variable, _ in credential_variables(config) if variable in os.environ}
    finally:
        os.environ.clear()
        os.environ.update(saved)


def write_config(root: Path, *, ports: Mapping[int, int] | None = None, store: Mapping[str, Any] | None = None,
                 workers: bool = True, pollers: bool = False, max_body_bytes: int = 1_048_576,
                 body_timeout_seconds: float = 30.0,
                 destinations: Mapping[str, Mapping[str, Any]] | None = None,
                 engine: Mapping[str, Any] | None = None,
                 adapters: Mapping[str, Mapping[str, Any]] | None = None, json_lines: bool = True) -> GatewayFiles:
    """Copy the demo configuration to `root/config` and make it safe to run beside anything else.

    `ports` maps a demo port (8316 national, 8317 province, ...) to the one a test serves; every other
    demo URL goes to a closed port. `destinations` and `adapters` update fields of delivery.yaml's
    destinations and of adapter files by name (shallow merge per top-level key).
    """
    served = set((ports or {}).values())
    port = free_port()
    while port in served:  # two picks may give the same number: the gateway would find its port taken by a peer
        port = free_port()
    config_dir = root / "config"
    shutil.copytree(CONFIG, config_dir)
    mapped = {**{p: closed_port() for p in DEMO_PORTS}, **(ports or {})}

    def repoint(text: str) -> str:
        return _URL_PORT.sub(lambda m: f"{m.group(1)}:{mapped.get(int(m.group(2)), int(m.group(2)))}", text)

    for path in config_dir.rglob("*.yaml"):
        path.write_text(repoint(path.read_text(encoding="utf-8")), encoding="utf-8")
    for adapter_id, changes in (adapters or {}).items():
        path = config_dir / "adapters" / f"{adapter_id}.yaml"
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        _merge(doc, changes)
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    delivery_path = config_dir / "delivery.yaml"
    delivery = yaml.safe_load(delivery_path.read_text(encoding="utf-8"))
    delivery["engine"] = {"reaper_interval": "0.5s", "idle_poll_min": "20ms", "idle_poll_max": "200ms",
                          "stop_grace": "3s", **(engine or {})}
    for destination in delivery["destinations"]:
        _merge(destination, (destinations or {}).get(destination["name"], {}))
    delivery_path.write_text(yaml.safe_dump(delivery, allow_unicode=True, sort_keys=False), encoding="utf-8")

    gateway: dict[str, Any] = {
        "region": {"code": "522600", "name": "黔东南苗族侗族自治州"},
        "server": {"host": "127.0.0.1", "port": port, "max_body_bytes": max_body_bytes,
                   "body_timeout_seconds": body_timeout_seconds},
        "data_dir": str(root / "data"),
        "store": {"kind": "sqlite", "sqlite_file": "gateway.db", **(store or {})},
        "logging": {"level": "INFO", "json_lines": json_lines},
        "workers": workers,
        "pollers": pollers,
        "credit_lookup": {"url": None},
        "demo": {"simulators": False},
    }
    (config_dir / "gateway.yaml").write_text(yaml.safe_dump(gateway, allow_unicode=True, sort_keys=False),
                                             encoding="utf-8")
    credentials = _demo_credentials(config_dir / "gateway.yaml")
    ops_tokens = {role: secrets.token_urlsafe(24) for role in ("viewer", "operator", "admin")}
    env = {key: value for key, value in os.environ.items() if not key.startswith("HIG_")}
    env.update(credentials)
    env.update({f"HIG_OPS_TOKEN_{role.upper()}": token for role, token in ops_tokens.items()})
    env.update({"HIG_NATIONAL_TOKEN": secrets.token_urlsafe(24), "HIG_NATIONAL_STATUS_SECRETS": generate_secret(),
                "PYTHONUNBUFFERED": "1"})
    return GatewayFiles(root=root, port=port, env=env, credentials=credentials, ops_tokens=ops_tokens)


def _merge(target: dict[str, Any], changes: Mapping[str, Any]) -> None:
    for key, value in changes.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            target[key] = {**target[key], **value}
        else:
            target[key] = value


@dataclass
class GatewayProcess:
    """One process of the gateway (`serve`) or of its workers (`worker`), with its log in the temp folder."""

    files: GatewayFiles
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _logs: list[Path] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def log_path(self) -> Path:
        return self.files.root / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        log = self.log_path.open("wb")
        self._logs.append(self.log_path)
        self.process = subprocess.Popen([sys.executable, "main.py", *self.command], cwd=REPO, env=self.files.env,
                                        stdout=log, stderr=subprocess.STDOUT)
        log.close()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> int:
        """SIGKILL: no shutdown code runs, as when the machine loses power or the OOM killer strikes."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        return self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it does not stop in time."""
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)

    def log_text(self) -> str:
        return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in self._logs if p.exists())

    def tail(self, chars: int = 3000) -> str:
        return self.log_text()[-chars:]


def wait_ready(gateway: GatewayProcess, within: float = 60.0) -> None:
    """Until GET /readyz answers 200; fails with the log's tail when the process dies or takes too long."""
    deadline = time.monotonic() + within
    with httpx.Client(timeout=2.0, trust_env=False) as http:
        while True:
            if not gateway.alive():
                raise AssertionError(f"the gateway exited with {gateway.process and gateway.process.returncode}:\n"
                                     f"{gateway.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get(f"{gateway.files.url}/readyz").status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"the gateway was not ready within {within} s:\n{gateway.tail()}")
            time.sleep(0.1)


def serve(files: GatewayFiles, name: str = "gateway") -> GatewayProcess:
    return GatewayProcess(files, name, ["-c", str(files.gateway_yaml)])


def worker(files: GatewayFiles, name: str = "worker") -> GatewayProcess:
    return GatewayProcess(files, name, ["worker", "-c", str(files.gateway_yaml), "--worker-id", name])


@contextmanager
def running(gateway: GatewayProcess, *, ready: bool = True) -> Iterator[GatewayProcess]:
    """Start a process, wait for it (for `serve`), and stop it at the end whatever happened."""
    gateway.start()
    try:
        if ready:
            wait_ready(gateway)
        yield gateway
    finally:
        gateway.stop()
