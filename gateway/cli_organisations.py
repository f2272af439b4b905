"""`python main.py organisations`: generate a province's table of 市场监督管理局 and ask who handles a region."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from contracts.identifiers import IdentifierError

organisations_cli = typer.Typer(help="The market-supervision organisations that handle tickets.",
                                add_completion=False, no_args_is_help=True)


@organisations_cli.command("generate")
def generate(
    province: Annotated[str, typer.Option("--province", help="GB/T 2260 code of a province, e.g. 520000")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="write here instead of stdout")] = None,
) -> None:
    """Print the 市场监督管理局 of a province and of each prefecture and county in it, from GB/T 2260."""
    from gateway.tickets.handlers import render_organisations

    try:
        text = render_organisations(province)
    except IdentifierError as err:
        typer.echo(f"--province {province}: {err}", err=True)
        raise typer.Exit(2) from err
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output}", err=True)
