"""``dotmac-factoryboy``: seed a database, lint factories, draw the factory graph.

Every command turns bad input into a one-line error and exit code 2 (never a traceback); a
refusal or a failed run exits 1.
"""

from __future__ import annotations

import os
import sys
from typing import Any, NoReturn

import click

from ..errors import DotmacFactoryError
from .graph import graph
from .lint import lint
from .seed import seed

__all__ = ["main"]


class OneLineErrors(click.Group):
    """A click group whose usage errors are one line on stderr, exit code 2."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx is not None else "dotmac-factoryboy"
            click.echo(f"{where}: error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except DotmacFactoryError as exc:  # a factory that cannot run: named, not a traceback
            click.echo(f"error: {type(exc).__name__}: {exc}", err=True)
            sys.exit(1)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(
    "dotmac-factoryboy", cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(package_name="dotmac-factoryboy")
def main() -> None:
    """Seed realistic multi-tenant data, lint factories, draw their graph."""
    # Modules named by --factories / --metadata import from the current directory, as under
    # `python -m` (the console script alone would not look there).
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


main.add_command(seed)
main.add_command(lint)
main.add_command(graph)
