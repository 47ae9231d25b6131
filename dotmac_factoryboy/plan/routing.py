"""Routing a call's positional arguments: ``customize(Model, ...)`` and ``LinkOnly(row)`` find
the one place that builds their model (by type, or at ``path=``), or fail naming the candidates.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..customizations import Customization, LinkOnly, Routed, format_path
from ..errors import CustomizationError, LinkOnlyError
from ..factory_boy_adapter import SPLITTER, Target, is_declaration, shape_of, targets_of
from .nodes import CALLER_SOURCES, MAX_DEPTH, FieldValue, PlanNode, refuse_inside_linked

if TYPE_CHECKING:
    from .call import CallPlan


def filled(plan: CallPlan) -> Iterator[tuple[PlanNode, str, FieldValue, Target]]:
    """Declared places the caller filled with a value (a row, a link, None) instead."""
    for node in plan.nodes():
        shape = shape_of(node.factory)
        for name, value in node.explicit():
            if name in node.children or is_declaration(value.value):
                continue
            for target in targets_of(shape.declarations.get(name))[:1]:
                yield node, name, value, target


def _linked_places(plan: CallPlan) -> Iterator[tuple[tuple[str, ...], type[Any]]]:
    """Places the caller filled with an instance, and the places they would have held."""
    for node, name, _, target in filled(plan):
        yield from _declared_places(target.factory, (*node.path, name), frozenset())


def _route(plan: CallPlan, item: Routed, kind: str) -> PlanNode:
    wanted = item.model
    nodes = [n for n in plan.nodes() if issubclass(wanted, n.model)]
    linked = [p for p, m in _linked_places(plan) if issubclass(wanted, m)]
    if item.path is not None:
        nodes = [n for n in nodes if n.path == item.path]
        linked = [p for p in linked if p == item.path]
    built = [n for n in nodes if n.role != "pinned"]
    if not built:
        taken = [format_path(p) for p in linked] + [n.label for n in nodes]
        if taken:
            raise CustomizationError(
                f"{plan.name}: {kind} for {wanted.__name__} targets "
                f"{', '.join(repr(t) for t in taken)}, which is linked to an existing instance "
                "(or lies inside one) or set to the tree's tenant, so nothing is built there. Fix: drop the override "
                "or the link (to change the tree's tenant, customize the tenant place "
                f"{plan.tenant_label()})."
            )
        everywhere = ", ".join(repr(n.label) for n in plan.nodes() if n.role != "pinned")
        at = f" at path {format_path(item.path)!r}" if item.path is not None else ""
        raise CustomizationError(
            f"{plan.name}: {kind} for {wanted.__name__}{at} matches no place of the build "
            f"tree (places: {everywhere}). Fix: customize a model this factory builds, or "
            "give path= one of those places."
        )
    if len(built) > 1:
        shown = ", ".join(repr(n.label) for n in built)
        raise CustomizationError(
            f"{plan.name}: {kind} for {wanted.__name__} is ambiguous: it is built at "
            f"{shown}. Fix: pass path= with one of them, e.g. path={built[0].label!r}."
        )
    return built[0]


def route_link(plan: CallPlan, link: LinkOnly) -> None:
    node = _route(plan, link, "LinkOnly")
    if not node.path:
        raise LinkOnlyError(
            f"{plan.name}: LinkOnly({link.model.__name__}) routes to the root, which this "
            "call builds. Fix: link a related row, or just use the instance you have."
        )
    parent_path, name = node.path[:-1], node.path[-1]
    parent = plan.node_at(parent_path)
    given = parent.fields.get(name)
    if given is not None and given.source in CALLER_SOURCES:
        raise CustomizationError(
            f"{plan.name}: {node.label!r} is set twice: by a keyword and by "
            f"LinkOnly({link.model.__name__}). Fix: pass one of them."
        )
    inside = sorted(explicit_inside(node))
    if inside:
        refuse_inside_linked(plan.name, node.label, inside, "is linked with LinkOnly")
    plan.route(parent_path, ("link", {name: link}), first=True)


def route_customization(plan: CallPlan, customization: Customization) -> None:
    node = _route(plan, customization, "customize()")
    earlier = plan.customized.get(node.path)
    if earlier is not None:
        raise CustomizationError(
            f"{plan.name}: two customizations target {node.label!r} ({earlier!r} and "
            f"{customization!r}). Fix: merge them into one."
        )
    clash = sorted(k for k, _ in node.explicit() if k in customization.fields)
    if clash:
        raise CustomizationError(
            f"{plan.name}: {customization!r} and a keyword argument both set "
            f"{', '.join(clash)} at {node.label!r}. Fix: set each field once."
        )
    plan.customized[node.path] = customization
    plan.route(node.path, ("customize", customization.fields))


def _declared_places(
    factory_cls: Any, path: tuple[str, ...], ancestors: frozenset[Any]
) -> Iterator[tuple[tuple[str, ...], type[Any]]]:
    """(path, model) of a factory's place and every place its declarations would build."""
    yield path, factory_cls._meta.model
    if len(path) >= MAX_DEPTH or factory_cls in ancestors:
        return
    for name, value in shape_of(factory_cls).declarations.items():
        for target in targets_of(value)[:1]:
            yield from _declared_places(target.factory, (*path, name), ancestors | {factory_cls})


def explicit_inside(node: PlanNode) -> Iterator[str]:
    """Caller keys set at or below ``node`` (they would be dropped if it were linked)."""
    for name, _ in node.explicit():
        yield f"{node.path[-1]}{SPLITTER}{name}" if node.path else name
    for child in node.children.values():
        for key in explicit_inside(child):
            yield f"{node.path[-1]}{SPLITTER}{key}" if node.path else key
