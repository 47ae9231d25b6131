"""``factory_graph()``: the factories as a graph read from their call plans, drawn as Mermaid or
Graphviz dot. Nodes carry model and traits; edges are SubFactory, RelatedFactory and tenant
links, labelled with the field (and the trait that adds them, if one does)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from factory import enums
from factory.declarations import RelatedFactory

from .factory_boy_adapter import shape_of
from .plan import plan_call

__all__ = ["FactoryGraph", "GraphEdge", "GraphNode", "factory_graph"]

KINDS = {"sub": "-->", "related": "==>", "tenant": "-.->"}
"""Mermaid arrow per edge kind: SubFactory, RelatedFactory, the tree's tenant."""


@dataclass(frozen=True)
class GraphNode:
    factory: str
    model: str
    traits: tuple[str, ...]


@dataclass(frozen=True)
class GraphEdge:
    source: str
    target: str
    field: str
    kind: str
    """``sub``, ``related`` or ``tenant``."""
    trait: str | None = None

    @property
    def label(self) -> str:
        return self.field if self.trait is None else f"{self.field} (trait {self.trait})"


@dataclass(frozen=True)
class FactoryGraph:
    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]

    def mermaid(self) -> str:
        """A Mermaid ``flowchart``: ``-->`` SubFactory, ``==>`` RelatedFactory, ``-.->`` tenant."""
        lines = ["flowchart LR"]
        for node in self.nodes:
            traits = f"<br/>traits: {', '.join(node.traits)}" if node.traits else ""
            lines.append(f'    {node.factory}["{node.factory}: {node.model}{traits}"]')
        for edge in self.edges:
            lines.append(f'    {edge.source} {KINDS[edge.kind]}|"{edge.label}"| {edge.target}')
        return "\n".join(lines) + "\n"

    def dot(self) -> str:
        """A Graphviz digraph: solid SubFactory, bold RelatedFactory, dashed tenant edges."""
        styles = {"sub": "solid", "related": "bold", "tenant": "dashed"}
        lines = ["digraph factories {", "    rankdir=LR;", "    node [shape=box];"]
        for node in self.nodes:
            traits = f"\\ntraits: {', '.join(node.traits)}" if node.traits else ""
            lines.append(f'    {node.factory} [label="{node.factory}: {node.model}{traits}"];')
        for edge in self.edges:
            lines.append(
                f'    {edge.source} -> {edge.target} [label="{edge.label}", '
                f"style={styles[edge.kind]}];"
            )
        lines.append("}")
        return "\n".join(lines) + "\n"


def factory_graph(factories: Iterable[Any]) -> FactoryGraph:
    """The graph of ``factories``: each one planned plain and with each trait enabled alone."""
    nodes, edges = [], []
    for factory_cls in factories:
        traits = tuple(shape_of(factory_cls).traits)
        nodes.append(GraphNode(factory_cls.__name__, factory_cls._meta.model.__name__, traits))
        seen: set[tuple[str, str, str]] = set()
        for trait in (None, *traits):
            for edge in _edges(factory_cls, trait):
                key = (edge.field, edge.target, edge.kind)
                if key not in seen:
                    seen.add(key)
                    edges.append(edge)
    return FactoryGraph(tuple(nodes), tuple(edges))


def _edges(factory_cls: Any, trait: str | None) -> list[GraphEdge]:
    """The places directly under the root of one plan, as edges."""
    # The tree's shape only: no tenant decision (that needs a session or a context).
    places = plan_call(
        factory_cls, enums.CREATE_STRATEGY, (), {trait: True} if trait else {}
    ).places
    root = places[0]
    found = []
    for place in places[1:]:
        if "." in place.path:
            continue
        if place.role == "tenant":
            kind = "tenant"
        elif isinstance(getattr(root.fields.get(place.path), "value", None), RelatedFactory):
            kind = "related"
        else:
            kind = "sub"
        source = root.fields.get(place.path)
        by_trait = trait if source is not None and source.source.startswith("trait") else None
        found.append(
            GraphEdge(factory_cls.__name__, place.factory.__name__, place.path, kind, by_trait)
        )
    return found
