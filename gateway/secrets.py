"""Secrets come from the environment; a development run without them gets generated ones under the data dir."""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

SECRETS_SUBDIR = "secrets"


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
