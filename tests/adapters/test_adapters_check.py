"""`python -m adapters check` as an integrator runs it: the untouched demo passes and says which credentials it
generates; a deployment that does not generate them is told each one that is not set."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

import adapters.__main__ as adapters_command

REPO = Path(__file__).resolve().parents[2]
DEMO_CREDENTIALS = 13  # every credential variable the demo's adapter files name


def _clean(env: dict[str, str]) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("PARTNER_", "HIG_"))}, **env}


def _check(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m adapters check` as a process: the entry point itself (one test)."""
    return subprocess.run([sys.executable, "-m", "adapters", "check", *args], cwd=REPO, env=_clean(env),
                          capture_output=True, text=True, timeout=120)


def _check_here(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """The same command's `main` in this process (a process costs 2-4 s of start-up here), with `env` as the whole
    environment and the repository as the working directory, both put back afterwards."""
    saved, out, err = dict(os.environ), io.StringIO(), io.StringIO()
    try:
        os.environ.clear()
        os.environ.update(_clean(env))
        with contextlib.chdir(REPO), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = adapters_command.main(["check", *args])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return subprocess.CompletedProcess(["python", "-m", "adapters", "check", *args], code, out.getvalue(),
                                       err.getvalue())


def test_the_untouched_demo_passes_and_names_the_credentials_it_generates(tmp_path: Path) -> None:
    done = _check({"HIG_DATA_DIR": str(tmp_path / "data")})
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"ok, with {DEMO_CREDENTIALS} credential(s) generated for the demo")
    assert "PARTNER_CITY12345_API_KEY" in done.stderr
    assert ("  PARTNER_CITY12345_API_KEY: not set: the demo generates it at its first start "
            f"({tmp_path / 'data' / 'secrets' / 'partner_city12345_api_key'})") in done.stdout


def test_a_credential_from_the_environment_is_said_so_and_a_generated_one_is_named(tmp_path: Path) -> None:
    secrets = tmp_path / "data" / "secrets"
    secrets.mkdir(parents=True)
    (secrets / "partner_emergency_api_key").write_text("made-by-the-demo", encoding="utf-8")
    done = _check_here({"HIG_DATA_DIR": str(tmp_path / "data"), "PARTNER_CITY12345_API_KEY": "the-real-key",
                   "PARTNER_EMERGENCY_API_KEY": "made-by-the-demo"})
    assert done.returncode == 0, done.stderr
    assert "  PARTNER_CITY12345_API_KEY: from the environment" in done.stdout
    assert "  PARTNER_EMERGENCY_API_KEY: GENERATED for the demo" in done.stdout  # the demo put it in the environment
    assert done.stderr.startswith(f"ok, with {DEMO_CREDENTIALS - 1} credential(s) generated")


def test_without_generation_every_unset_credential_is_a_problem(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(REPO / "config", config)
    gateway = yaml.safe_load((config / "gateway.yaml").read_text(encoding="utf-8"))
    gateway["demo"] = {"simulators": False, "generate_credentials": False}
    (config / "gateway.yaml").write_text(yaml.safe_dump(gateway, allow_unicode=True), encoding="utf-8")
    done = _check_here({"PARTNER_CITY12345_API_KEY": "the-real-key"}, str(config / "adapters"))
    assert done.returncode == 1
    assert f"{config / 'adapters' / 'city-12345-rest.yaml'}: environment variable PARTNER_CITY12345_CALLBACK_SECRET " \
           "is not set" in done.stderr
    assert done.stderr.strip().endswith(f"{DEMO_CREDENTIALS - 1} problem(s)")
