"""``dotmac-factoryboy lint``: every factory, each trait and pair of traits, rolled back."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..engines import engine_for
from ..errors import first_line
from ..linting import failure_lines
from ..linting import lint as run_lint
from ..targets import factories_in, load_module, metadata_for
from .options import factories_option, metadata_option, one_line_errors


@click.command()
@click.option(
    "--url",
    default="sqlite://",
    show_default=True,
    help="Database to lint in (missing tables are created first); default in memory.",
)
@metadata_option
@factories_option
@click.option("--traits/--no-traits", default=True, show_default=True)
def lint(url: str, metadata: str | None, factories_module: str, traits: bool) -> None:
    """Build and create every factory (with each trait and pair) in a rolled-back transaction."""
    with one_line_errors():
        factories = factories_in(load_module(factories_module))
        engine = engine_for(url)
        schema = metadata_for(metadata, factories)
    try:
        schema.create_all(engine)
    except SQLAlchemyError as exc:  # a schema written for another database (server defaults...)
        raise click.ClickException(
            f"cannot create the schema in {engine.url.render_as_string()}: {first_line(exc)}. "
            "Fix: lint against the kind of database the schema is written for "
            "(--url postgresql+psycopg://... or mysql+pymysql://...)."
        ) from None
    console = Console()
    with Session(engine) as session:
        report = run_lint(session=session, traits=traits, factories=factories)
        session.rollback()
    if report.failures and console.is_terminal:
        table = Table("factory", "traits", "exception", "message", title="Lint failures")
        for failure in report.failures:
            table.add_row(
                failure.factory, ", ".join(failure.traits), failure.exception, failure.message
            )
        console.print(table)
    elif report.failures:  # a CI log: one line per distinct failure, full names, grouped
        for line in failure_lines(report.failures):
            click.echo(line)
    for finding in report.findings:
        click.echo(f"note {finding.factory} [{finding.kind}]: {finding.message}")
    console.print(
        f"{len(factories)} factories, {report.checked} calls checked, "
        f"{len(report.failures)} failed",
        highlight=False,
    )
    if report.failures:
        raise click.exceptions.Exit(1)
