"""`python -m adapters check [FOLDER]`: check adapter files, their mapping specs and credentials before a start."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from adapters.config import DEFAULT_ADAPTERS_DIR, AdapterConfig, AdapterConfigError
from adapters.loading import load_adapters, mapping_specs_for
from adapters.registry import default_registry
from mapping.spec import SpecError


def _variables(config: AdapterConfig) -> list[str]:
    auth = config.auth
    names = [auth.api_key_env, auth.hmac_secret_env, auth.outbound_api_key_env]
    if config.callback is not None:
        names.append(config.callback.secret_env)
    return [name for name in names if name is not None]


def _describe(config: AdapterConfig) -> str:
    ways = [w for w, on in (("push", config.push), ("poll", config.poll is not None),
                            ("callback", config.callback is not None)) if on]
    state = "" if config.enabled else " (disabled)"
    return f"{config.id}: kind {config.kind}, {', '.join(ways) or 'nothing to do'}, spec {config.mapping_spec}{state}"


def check(folder: Path, *, env: dict[str, str]) -> list[str]:
    """Every problem of an adapter folder, as lines naming file, line and key (empty: ready to start)."""
    try:
        configs = load_adapters(folder)
    except AdapterConfigError as err:
        return err.problems
    problems: list[str] = []
    try:
        mapping_specs_for(configs)
    except SpecError as err:
        problems.extend(err.problems)
    for config in configs.values():
        print(_describe(config))
        for name in _variables(config):
            if config.enabled and not env.get(name, "").strip():
                problems.append(f"{config.source_file}: environment variable {name} is not set")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check_cmd = commands.add_parser("check", help="check adapter files, mapping specs and credential variables")
    check_cmd.add_argument("folder", nargs="?", type=Path, default=DEFAULT_ADAPTERS_DIR)
    commands.add_parser("kinds", help="list the adapter kinds known (built-in and entry points)")
    args = parser.parse_args(argv)
    if args.command == "kinds":
        print("\n".join(default_registry.names()))
        return 0
    problems = check(args.folder, env=dict(os.environ))
    for problem in problems:
        print(problem, file=sys.stderr)
    print("ok" if not problems else f"{len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
