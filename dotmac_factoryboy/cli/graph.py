"""``dotmac-factoryboy graph``: the factories and their links, as Mermaid or Graphviz dot."""

from __future__ import annotations

import click

from ..graphing import factory_graph
from ..targets import factories_in, load_module
from .options import factories_option, one_line_errors


@click.command()
@factories_option
@click.option(
    "--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid", show_default=True
)
def graph(factories_module: str, fmt: str) -> None:
    """Print the factory graph: SubFactory, RelatedFactory and tenant edges, with traits."""
    with one_line_errors():
        drawn = factory_graph(factories_in(load_module(factories_module)))
    click.echo(drawn.mermaid() if fmt == "mermaid" else drawn.dot(), nl=False)
