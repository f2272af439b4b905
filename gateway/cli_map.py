"""`python main.py map`: map one partner ticket with its adapter's spec, or check every spec against its fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from contracts.errors import FieldError
from mapping.engine import Mapped, Noticed, Rejected, Returned, apply
from mapping.goldens import Fixture, FixtureCheck, check_fixture, fixtures_of, read_payload, write_golden
from mapping.loading import FIXTURES_DIR, SPECS_DIR, load_spec, load_specs
from mapping.payload import PayloadError
from mapping.spec import MappingSpec, SpecError


def map_command(
    file: Annotated[Path | None, typer.Argument(help="a partner payload (.json, .gbk.json or .xml)")] = None,
    adapter: Annotated[str | None, typer.Option("--adapter", "-a", help="adapter id, e.g. city-12345-rest")] = None,
    check: Annotated[bool, typer.Option("--check", help="run every spec against its fixtures")] = False,
    specs: Annotated[Path, typer.Option(help="folder of mapping specs")] = SPECS_DIR,
    fixtures: Annotated[Path, typer.Option(help="folder of fixtures, one sub-folder per adapter")] = FIXTURES_DIR,
    content_type: Annotated[
        str | None, typer.Option(help="read FILE as this Content-Type (e.g. 'application/json; charset=GBK')")
    ] = None,
    save_golden: Annotated[
        bool, typer.Option("--save-golden", help="write FILE's golden files beside it (review before committing)")
    ] = False,
) -> None:
    """Map a partner ticket to the national standard (prints the ticket, or the errors and exits 1),
    or with --check compare every spec's fixtures with their goldens (exits 1 on any difference)."""
    if check:
        raise typer.Exit(_check(specs, fixtures, adapter))
    if file is None or adapter is None:
        typer.echo("give --adapter ID FILE to map one ticket, or --check to check every spec", err=True)
        raise typer.Exit(2)
    spec = _load(specs / f"{adapter}.yaml")
    if save_golden:
        for path in write_golden(spec, Fixture(file)):
            typer.echo(f"wrote {path}")
        return
    try:
        payload = read_payload(file, spec, content_type)
    except (OSError, ValueError, PayloadError) as err:
        typer.echo(f"cannot read {file}: {err}", err=True)
        raise typer.Exit(2) from err
    result = apply(spec, payload)
    if isinstance(result, Mapped):
        for warning in result.warnings:
            typer.echo(f"warning: {_describe(warning)}", err=True)
        typer.echo(_json(result.ticket.model_dump(mode="json", exclude_none=True)))
    elif isinstance(result, Noticed):
        typer.echo(_json({"follow_up": result.notice.model_dump(mode="json", exclude_none=True)}))
    elif isinstance(result, Returned):
        typer.echo(_json({"returned": {"reason_code": result.reason_code.value, "reason": result.reason,
                                       "source_ticket_no": result.source_ticket_no}}))
    else:
        assert isinstance(result, Rejected)
        typer.echo(_json({"errors": [error.model_dump() for error in result.errors]}))
        for error in result.errors:
            typer.echo(f"error: {_describe(error)}", err=True)
        raise typer.Exit(1)


def _check(specs_dir: Path, fixtures_dir: Path, only: str | None) -> int:
    try:
        specs = load_specs(specs_dir)
    except SpecError as err:
        typer.echo(f"mapping spec error:\n{err}", err=True)
        return 2
    if only is not None:
        specs = {key: spec for key, spec in specs.items() if key == only}
        if not specs:
            typer.echo(f"no spec {only}.yaml in {specs_dir}", err=True)
            return 2
    failed = False
    for adapter_id, spec in specs.items():
        results = [check_fixture(spec, fixture) for fixture in fixtures_of(adapter_id, fixtures_dir)]
        bad = [result for result in results if result.problems]
        if not results:
            typer.echo(f"FAIL {adapter_id}: no fixtures in {fixtures_dir / adapter_id}")
            failed = True
            continue
        failed = failed or bool(bad)
        status = "ok  " if not bad else "FAIL"
        matching = len(results) - len(bad)
        typer.echo(f"{status} {adapter_id}: {matching}/{len(results)} fixtures match ({_kinds(results)})")
        for result in bad:
            typer.echo(f"     {result.fixture.name}:")
            for problem in result.problems:
                typer.echo(f"       {problem}")
    orphans = [] if only is not None else sorted(
        path.name for path in fixtures_dir.iterdir() if path.is_dir() and path.name not in specs
    )
    for name in orphans:
        typer.echo(f"FAIL {name}: fixtures without a spec {name}.yaml")
    return 1 if failed or orphans else 0


def _kinds(results: list[FixtureCheck]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.kind] = counts.get(result.kind, 0) + 1
    names = {"ok": "mapped", "errors": "rejected", "returned": "returned"}
    return ", ".join(f"{count} {names.get(kind, kind)}" for kind, count in sorted(counts.items()))


def _load(path: Path) -> MappingSpec:
    if not path.is_file():
        typer.echo(f"no mapping spec {path}", err=True)
        raise typer.Exit(2)
    try:
        return load_spec(path)
    except SpecError as err:
        typer.echo(f"mapping spec error:\n{err}", err=True)
        raise typer.Exit(2) from err


def _describe(error: FieldError) -> str:
    source = f" (from {error.source_path})" if error.source_path else ""
    return f"{error.field}{source}: {error.rule}: {error.message}"


def _json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2, default=str)
