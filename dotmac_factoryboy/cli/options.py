"""Options and error mapping the commands share."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from ..errors import SeedError, SeedFailedError, SeedRefusedError, TargetError
from ..targets import ISP_FACTORIES

F = TypeVar("F", bound=Callable[..., Any])


def factories_option(function: F) -> F:
    """``--factories MODULE``: whose factories (default: the ISP reference domain)."""
    return click.option(
        "--factories",
        "factories_module",
        default=ISP_FACTORIES,
        show_default=True,
        help="Module that defines (or imports) the factories.",
    )(function)


def metadata_option(function: F) -> F:
    """``--metadata module:attr``: the schema (default: the factories' models' metadata)."""
    return click.option(
        "--metadata",
        default=None,
        help="module:attr of the SQLAlchemy MetaData (default: the factories' models').",
    )(function)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Bad input becomes a usage error (exit 2); a refusal or a failed tenant an error (exit 1)."""
    try:
        yield
    except (SeedRefusedError, SeedFailedError) as exc:
        raise click.ClickException(str(exc)) from None
    except (SeedError, TargetError) as exc:
        raise click.UsageError(str(exc)) from None
