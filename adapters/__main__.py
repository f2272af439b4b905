"""`python -m adapters check [FOLDER]`: check adapter files, their mapping specs and credentials before a start.

Which credentials the gateway will use depends on two keys of the gateway.yaml beside the folder (or given with
`--gateway-config`): `data_dir` (where the demo keeps generated credentials) and `demo.generate_credentials` /
`demo.simulators` (whether unset ones are generated). They are read here as plain YAML, with their HIG_* overrides,
because this package sits below the gateway's configuration model.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from adapters.config import DEFAULT_ADAPTERS_DIR, AdapterConfig, AdapterConfigError
from adapters.loading import load_adapters, mapping_specs_for
from adapters.registry import default_registry
from adapters.secrets import CredentialSource, credential_sources, generated_secret_path
from mapping.spec import SpecError

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class CredentialPolicy:
    """Where generated demo credentials live, and whether a gateway of this configuration generates them."""

    data_dir: Path
    generate: bool

    @classmethod
    def beside(cls, gateway_yaml: Path | None, env: dict[str, str]) -> CredentialPolicy:
        doc: dict[str, object] = {}
        if gateway_yaml is not None and gateway_yaml.is_file():
            loaded = yaml.safe_load(gateway_yaml.read_text(encoding="utf-8"))
            doc = loaded if isinstance(loaded, dict) else {}
        demo = doc.get("demo") if isinstance(doc.get("demo"), dict) else {}
        assert isinstance(demo, dict)

        def flag(key: str) -> bool:
            override = env.get(f"HIG_DEMO__{key.upper()}")
            return override.strip().lower() in _TRUE if override is not None else bool(demo.get(key, False))

        data_dir = Path(env.get("HIG_DATA_DIR") or str(doc.get("data_dir") or "data"))
        return cls(data_dir=data_dir, generate=flag("generate_credentials") or flag("simulators"))


_SAID: dict[CredentialSource, str] = {
    "environment": "from the environment",
    "generated": "GENERATED for the demo ({path}): a partner holding the real key is refused until it is set",
    "to_generate": "not set: the demo generates it at its first start ({path})",
    "missing": "not set",
}


def _describe(config: AdapterConfig) -> str:
    ways = [w for w, on in (("push", config.push), ("poll", config.poll is not None),
                            ("callback", config.callback is not None)) if on]
    state = "" if config.enabled else " (disabled)"
    return f"{config.id}: kind {config.kind}, {', '.join(ways) or 'nothing to do'}, spec {config.mapping_spec}{state}"


def check(folder: Path, *, policy: CredentialPolicy) -> tuple[list[str], list[str]]:
    """Every problem of an adapter folder, as lines naming file, line and key (empty: ready to start), and the
    credential variables the demo generates (or generated) rather than the environment giving them."""
    try:
        configs = load_adapters(folder)
    except AdapterConfigError as err:
        return err.problems, []
    problems: list[str] = []
    generated: list[str] = []
    try:
        mapping_specs_for(configs)
    except SpecError as err:
        problems.extend(err.problems)
    for config in configs.values():
        print(_describe(config))
        for variable, source in credential_sources(config, policy.data_dir, generate=policy.generate).items():
            path = generated_secret_path(policy.data_dir, variable.lower())
            print(f"  {variable}: {_SAID[source].format(path=path)}")
            if not config.enabled:
                continue
            if source == "missing":
                problems.append(f"{config.source_file}: environment variable {variable} is not set")
            elif source != "environment":
                generated.append(variable)
    return problems, generated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m adapters", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    check_cmd = commands.add_parser("check", help="check adapter files, mapping specs and credential variables")
    check_cmd.add_argument("folder", nargs="?", type=Path, default=DEFAULT_ADAPTERS_DIR)
    check_cmd.add_argument("--gateway-config", type=Path, default=None,
                           help="the gateway.yaml whose data_dir and demo settings apply (default: beside FOLDER)")
    commands.add_parser("kinds", help="list the adapter kinds known (built-in and entry points)")
    args = parser.parse_args(argv)
    if args.command == "kinds":
        print("\n".join(default_registry.names()))
        return 0
    env = dict(os.environ)
    policy = CredentialPolicy.beside(args.gateway_config or args.folder.parent / "gateway.yaml", env)
    problems, generated = check(args.folder, policy=policy)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s)", file=sys.stderr)
        return 1
    if generated:
        print(f"ok, with {len(generated)} credential(s) generated for the demo, not from the environment: "
              f"{', '.join(generated)}; set them in the environment (and demo.generate_credentials: false) for "
              "real partners", file=sys.stderr)
    else:
        print("ok", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
