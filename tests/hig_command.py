"""The `hig` command line (`python main.py ...`) run in the test's own process, seen as a subprocess would see it.

A subprocess spends 2-4 s on this machine starting Python and importing the gateway before it does anything; for
the commands whose process is not what a test is about, `run_hig` calls the same typer application `main.py` calls
(`hig.command`, with the demo's peers as its context object), with the environment replaced by `env` when given and
the working directory set to `cwd`, and puts both back afterwards. Standard input, output and error are kept apart
as a subprocess's are, and an exception the command does not handle is exit status 1 with its traceback on
standard error, as Python prints it. Each command family keeps one test that starts the real `main.py`.
"""

from __future__ import annotations

import contextlib
import os
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from gateway.cli import cli
from hig.command import demo_peers

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Completed:
    """What a finished command left: the fields of `subprocess.CompletedProcess` the tests read."""

    returncode: int
    stdout: str
    stderr: str


def run_hig(*args: str, env: Mapping[str, str] | None = None, stdin: str | None = None,
            cwd: Path = REPO) -> Completed:
    """`python main.py *args` with `env` as its whole environment (this one when None), in `cwd`, fed `stdin`."""
    saved = dict(os.environ)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        with contextlib.chdir(cwd):
            result = CliRunner().invoke(cli, list(args), obj=demo_peers, input=stdin, prog_name="main.py",
                                        catch_exceptions=True)
    finally:  # whatever the command set (demo credentials, say) goes with it, as with a process that ended
        os.environ.clear()
        os.environ.update(saved)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return Completed(result.exit_code, result.stdout, stderr)
