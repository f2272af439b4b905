"""Secrets come from the environment; a development run without them gets generated ones under the data dir."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from adapters.config import AdapterConfig
from adapters.wire.webhooks import generate_secret

log = logging.getLogger(__name__)

SECRETS_SUBDIR = "secrets"

# Where a credential comes from: the environment, a value the demo generated under the data dir (in use), one the
# demo will generate at its first start, or nowhere (the gateway cannot authenticate that partner).
CredentialSource = Literal["environment", "generated", "to_generate", "missing"]


def generated_secret_path(data_dir: Path, name: str) -> Path:
    return data_dir / SECRETS_SUBDIR / name


def resolve_secret(env_var: str, data_dir: Path, name: str, generate: Callable[[], str] | None = None) -> list[str]:
    """The active secrets: the comma-separated value of `env_var`, else one generated once for this data dir.

    Several comma-separated values are several active secrets (key rotation: the first signs, any verifies).
    A generated secret is written with mode 0600 and a warning says where: it is for development and demos,
    where the simulators read the same file; production sets the environment variable.
    """
    value = os.environ.get(env_var, "").strip()
    if value:
        return [part.strip() for part in value.split(",") if part.strip()]
    path = generated_secret_path(data_dir, name)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = (generate or (lambda: secrets.token_urlsafe(32)))()
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process of this gateway generated it first
            return [path.read_text(encoding="utf-8").strip()]
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(fresh)
        log.warning("no %s in the environment: generated a development secret", env_var,
                    extra={"secret_file": str(path)})
    return [path.read_text(encoding="utf-8").strip()]


def demo_secret(env_var: str, name: str) -> str | None:
    """For a simulator started on its own beside the demo: the variable, else what the demo generated.

    The demo's data dir is $HIG_DATA_DIR, else ./data, as for `python main.py`.
    """
    value = os.environ.get(env_var, "").strip()
    if value:
        return value
    path = generated_secret_path(Path(os.environ.get("HIG_DATA_DIR") or "data"), name)
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


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


def ensure_demo_credentials(data_dir: Path, adapters: Mapping[str, AdapterConfig]) -> list[str]:
    """Give every unset partner credential a generated value kept under the data dir; the names set.

    The demo's simulators read the same environment, so both sides agree without any value in the repo.
    """
    names: list[str] = []
    for config in adapters.values():
        for variable, webhook in credential_variables(config):
            if os.environ.get(variable):
                continue
            value = resolve_secret(variable, data_dir, variable.lower(), generate=generate_secret if webhook else None)
            os.environ[variable] = ",".join(value)
            names.append(variable)
    return names


def credential_source(variable: str, data_dir: Path, *, generate: bool) -> CredentialSource:
    """Where `variable`'s credential comes from for a gateway on `data_dir` that generates demo credentials or not.

    A value in the environment equal to the file the demo generated is "generated": the demo put it there (the
    gateway and its simulators share it), and a partner holding the real key would be refused.
    """
    value = os.environ.get(variable, "").strip()
    path = generated_secret_path(data_dir, variable.lower())
    generated = path.read_text(encoding="utf-8").strip() if path.is_file() else ""
    if value:
        return "generated" if generated and value == generated else "environment"
    if generate:
        return "generated" if generated else "to_generate"
    return "missing"


def credential_sources(config: AdapterConfig, data_dir: Path, *, generate: bool) -> dict[str, CredentialSource]:
    """Every credential variable of an adapter and where its value comes from (see credential_source)."""
    return {variable: credential_source(variable, data_dir, generate=generate)
            for variable, _ in credential_variables(config)}
