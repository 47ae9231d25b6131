"""The call plan: a side-effect-free walk of the whole declaration tree of one factory call.

Every SubFactory and RelatedFactory place gets a node (cycles stop the walk). Each node sees its
inputs as ranked layers, highest first: the caller (keywords, ``customize()``, ``LinkOnly``),
values pushed down by ancestors' traits and declarations, the keyword defaults of the declaration
that builds it, then its own traits in the order they were enabled, then its own declarations.
The first layer that sets a field wins, field by field, at every depth. The plan hands factory_boy
every winning value it would not produce by itself, so factory_boy's "trait declared last wins"
rule never decides anything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any
from uuid import UUID

from factory import enums
from factory.declarations import SKIP, Maybe
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import InstanceState

from ..context import shallow_copy
from ..customizations import Customization, LinkOnly, Routed, format_path
from ..errors import CustomizationError, LinkOnlyError
from ..factory_boy_adapter import (
    SPLITTER,
    Target,
    decider_name,
    declared_key,
    is_declaration,
    lasting_class,
    shape_of,
    targets_of,
    without_values,
)
from ..relationships import identity_by_keys, key_attributes, load_row, relationship_for_column
from ..scoping import TenantDecision
from ..session import find_session
from .checks import validate
from .nodes import (
    CALLER_SOURCES,
    MAX_DEPTH,
    FieldValue,
    Layer,
    Link,
    Place,
    PlanNode,
    is_emitted,
    is_local,
)
from .routing import filled, route_customization, route_link
from .tenant_places import place_tenant, tenant_keywords

_SIMPLE = (type(None), bool, int, float, str, bytes, Decimal, dt.date, dt.time, dt.timedelta, UUID)
_TEMPLATES: dict[tuple[Any, ...], CallPlan] = {}
TEMPLATE_LIMIT = 4096
"""Plans kept for reuse; the cache is emptied when it grows past this."""


def plan_call(
    factory_cls: Any, strategy: str, routed: tuple[Routed, ...], kwargs: Mapping[str, Any]
) -> CallPlan:
    """The plan of one call, reusing the walk of an earlier call of the same shape.

    Calls share one walk when they have the same factory (or an empty subclass of it with the
    same declarations: pytest-factoryboy's), strategy and keys (in order), no positional
    routing, and values of the same kind: plain values of the same type and truthiness, rows of
    the same model, the same declaration objects. The new call's values and class are bound
    into a copy of the nodes they address.
    """
    kinds = _kinds(kwargs) if not routed else None
    if kinds is None:
        return CallPlan(factory_cls, strategy, routed, kwargs)
    key = (declared_key(factory_cls), strategy, *kinds)
    template = _TEMPLATES.get(key)
    if template is not None:
        return template.rebound(factory_cls, kwargs)
    plan = CallPlan(factory_cls, strategy, routed, kwargs)
    if not all(_addressed(plan.root, k) is not None for k in kwargs):
        return plan  # a key aims past the places (a Dict item, a post-generation extra)
    if any(v.source == "link by key" for n in plan.nodes() for v in n.fields.values()):
        return plan  # the rows a key links are this call's own
    if len(_TEMPLATES) >= TEMPLATE_LIMIT:
        _TEMPLATES.clear()
    # Kept without this call's values and class: a test's rows must not outlive it.
    _TEMPLATES[key] = plan.rebound(lasting_class(factory_cls), without_values(kwargs))
    return plan.rebound(factory_cls, kwargs)


def _kinds(kwargs: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """What the walk reads of each keyword value (None: a value it may read more of)."""
    kinds = []
    for key, value in kwargs.items():
        kind = _kind(value)
        if kind is None:
            return None
        kinds.append((key, kind))
    return tuple(kinds)


def _kind(value: Any) -> Any:
    """A plain value's type and truthiness, a row's model, a declaration itself; a list or
    tuple of those item by item; None for anything else."""
    if isinstance(value, _SIMPLE):
        return (type(value), bool(value))
    if is_declaration(value):
        try:
            hash(value)
        except TypeError:
            return None
        return value
    if isinstance(value, (list, tuple)):
        items = tuple(_kind(item) for item in value)
        return None if None in items else (type(value), items)
    if isinstance(sa_inspect(value, raiseerr=False), InstanceState):
        return (type(value), "row")
    return None


def _addressed(node: PlanNode, key: str) -> PlanNode | None:
    """The node a caller key sets a field of, if every part before the field is a place."""
    *heads, _ = key.split(SPLITTER)
    for head in heads:
        found = node.children.get(head)
        if found is None:
            return None
        node = found
    return node


class CallPlan:
    """The validated plan of one factory call, and the flat factory_boy keywords realising it."""

    def __init__(
        self,
        factory_cls: Any,
        strategy: str,
        routed: tuple[Routed, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        self.factory = factory_cls
        self.strategy = strategy
        self.tenant: TenantDecision | None = None
        """The tree's tenant, set by ``tenancy.decide`` over the finished plan."""
        self._routed: dict[tuple[str, ...], list[Layer]] = {}
        self.customized: dict[tuple[str, ...], Customization] = {}
        """Each customized place and the ``customize()`` aimed at it (one per place)."""
        self._links: list[tuple[tuple[str, ...], LinkOnly]] = []
        self._listed: tuple[PlanNode, list[PlanNode]] | None = None
        self._caller: Layer = ("caller", kwargs)
        for item in routed:
            if not isinstance(item, (LinkOnly, Customization)):
                raise CustomizationError(
                    f"{self.name}: positional argument {item!r} is neither a customize() nor a "
                    "LinkOnly. Fix: pass field values as keywords, or wrap them in "
                    "customize(Model, ...)."
                )
        self._wanted = {r.path for r in routed if r.path is not None}
        """Paths ``customize(path=)`` / ``LinkOnly(path=)`` name: the walk reaches them."""
        self.root = self._walk()
        for link in (r for r in routed if isinstance(r, LinkOnly)):
            route_link(self, link)
        for customization in (r for r in routed if isinstance(r, Customization)):
            route_customization(self, customization)
        validate(self)

    def rebound(self, factory_cls: Any, kwargs: Mapping[str, Any]) -> CallPlan:
        """A copy of this plan for a call of the same shape: ``kwargs`` as the caller's values,
        ``factory_cls`` (this plan's, or an empty subclass of it) at the root."""
        plan = shallow_copy(self)
        plan.factory = factory_cls
        plan._caller = ("caller", kwargs)
        plan.tenant = None
        if not kwargs and self.root.factory is factory_cls:
            return plan
        copies: dict[int, PlanNode] = {}

        def own(node: PlanNode) -> PlanNode:
            mine = copies.get(id(node))
            if mine is None:
                mine = copies[id(node)] = shallow_copy(node)
                mine.layers = []  # the walk's inputs: only the walk reads them
                mine.fields, mine.flags = dict(node.fields), dict(node.flags)
                mine.children = dict(node.children)
            return mine

        plan.root = own(self.root)
        plan.root.factory = factory_cls
        for key, value in kwargs.items():
            node = plan.root
            *heads, name = key.split(SPLITTER)
            for head in heads:
                node.children[head] = node = own(node.children[head])
            target = node.flags if name in node.flags else node.fields
            target[name] = FieldValue(value, "caller")
        return plan

    @property
    def name(self) -> str:
        """The root factory's name, as errors name it."""
        name: str = self.factory.__name__
        return name

    @property
    def link_paths(self) -> list[tuple[tuple[str, ...], LinkOnly]]:
        """The ``LinkOnly`` rows of the call, with the path each links at."""
        return self._links

    # -- the walk ---------------------------------------------------------------------------

    def _walk(self) -> PlanNode:
        root = PlanNode(self.factory, (), [*self._routed.get((), []), self._caller])
        self._expand(root, frozenset())
        place_tenant(self, root)
        return root

    def _expand(self, node: PlanNode, ancestors: frozenset[Any]) -> None:
        shape = shape_of(node.factory)
        node.layers = [(s, _unlinked(s, v, self, node)) for s, v in node.layers]
        nested: dict[str, dict[int, dict[str, Any]]] = {}

        def take(rank: int, source: str, values: Mapping[str, Any]) -> None:
            """First setter wins: own fields, trait flags, or keys for a place below."""
            for key, value in values.items():
                head, sep, rest = key.partition(SPLITTER)
                if sep and head and rest:
                    nested.setdefault(head, {}).setdefault(rank, {})[rest] = value
                elif key in shape.traits:
                    node.flags.setdefault(key, FieldValue(value, source))
                else:
                    node.fields.setdefault(key, FieldValue(value, source))

        for rank, (source, values) in enumerate(node.layers):
            take(rank, source, values)
        node.traits, node.per_object = _enabled_traits(node, shape.traits)  # needs the flags
        trait_layers: list[Layer] = [
            (
                f"trait {name}",
                {k: v for k, v in shape.traits[name].items() if k not in shape.traits},
            )
            for name in node.traits
        ]
        layers = [*node.layers, *trait_layers]
        for rank in range(len(node.layers), len(layers)):
            take(rank, *layers[rank])
        for name, declared in shape.declarations.items():
            node.fields.setdefault(name, FieldValue(declared, "default"))
        for head, by_rank in nested.items():
            node.nested[head] = [(_pushed(layers[r][0], node), v) for r, v in by_rank.items()]
        self._link_by_key(node)
        if len(node.path) >= MAX_DEPTH:
            return
        # Below a repeated factory (a self-reference), the edges that repeat again are followed
        # only where the call addresses them; every other place is walked as usual.
        repeated = node.factory in ancestors
        seen = ancestors | {node.factory}
        for name, value in node.fields.items():
            targets = _decided_targets(node, value.value) if name not in node.provided else []
            if not targets:
                continue
            cycle = targets[0].factory in seen
            if repeated and cycle and not self._addressed_below(node, name):
                node.stopped.append(name)
                continue
            self._add_child(node, name, targets[0], seen)

    def _addressed_below(self, node: PlanNode, name: str) -> bool:
        """Whether the caller's keys or a ``customize(path=...)`` reach into ``node``'s place
        ``name`` (so a self-reference is followed that deep)."""
        path = (*node.path, name)
        if any(source in CALLER_SOURCES for source, _ in node.nested.get(name, [])):
            return True
        return any(p[: len(path)] == path for p in (*self._routed, *self._wanted))

    def _add_child(
        self, node: PlanNode, name: str, target: Target, ancestors: frozenset[Any]
    ) -> PlanNode:
        path = (*node.path, name)
        layers = [
            *self._routed.get(path, []),
            *node.nested.pop(name, []),
            ("declaration", target.defaults),
        ]
        child = PlanNode(target.factory, path, layers, target.provided)
        node.children[name] = child
        self._expand(child, ancestors)
        return child

    def add_place(self, node: PlanNode, name: str, factory_cls: Any, role: str) -> PlanNode:
        """Add a place the declarations do not name (the tree's tenant) below ``node``."""
        child = self._add_child(node, name, Target(factory_cls, {}), frozenset({node.factory}))
        child.role = role
        return child

    def _link_by_key(self, node: PlanNode) -> None:
        """A foreign-key value (``customer_id=7``) links that row instead of building one: under
        ``create()`` the row is loaded (one SELECT, no write), so declarations reading
        ``o.customer`` see it, and a key that points at no row is refused here."""
        explicit = list(node.explicit())
        if not explicit or sa_inspect(node.model, raiseerr=False) is None:
            return
        given = {k: v.value for k, v in explicit if not is_declaration(v.value)}
        for key in given:
            relation = relationship_for_column(node.model, key)
            if relation in (None, key):
                continue
            current = node.fields.get(str(relation))
            if (
                current is not None
                and current.source not in CALLER_SOURCES
                and targets_of(current.value)
            ):
                row = self._linked_row(node, str(relation), given)
                node.fields[str(relation)] = FieldValue(row, "link by key")

    def _linked_row(self, node: PlanNode, relation: str, given: Mapping[str, Any]) -> Any:
        """The row foreign-key values point at, under ``create()`` with a session; else SKIP."""
        columns = key_attributes(node.model, relation)
        missing = [c for c in columns if given.get(c) is None]
        if missing and len(missing) < len(columns):
            keys = ", ".join(f"{c}=" for c in columns)
            raise LinkOnlyError(
                f"{self.name}: {', '.join(f'{c}=' for c in columns if c not in missing)} at "
                f"{node.label!r} is part of the key of {relation!r}; {keys} together link it. "
                f"Fix: give all of them, or pass {relation}=<row>."
            )
        session = find_session(node.factory) if self.strategy == enums.CREATE_STRATEGY else None
        found = identity_by_keys(node.model, relation, given) if session is not None else None
        if session is None or found is None:
            return SKIP
        target, identity = found
        row = load_row(session, target, identity)
        if row is None:
            shown = ", ".join(f"{c}={given[c]!r}" for c in columns)
            raise LinkOnlyError(
                f"{self.name}: {shown} at {node.label!r} points at no {target.__name__} row. "
                f"Fix: pass the key of an existing {target.__name__}, or leave {relation!r} to "
                "its factory."
            )
        return row

    # -- routing ----------------------------------------------------------------------------

    def _places(self) -> Iterator[PlanNode]:
        """Every node, breadth first (root first): listed once per root (a call asks several
        times; the tree only changes by a new root, from a walk or ``rebound``)."""
        listed = self._listed
        if listed is None or listed[0] is not self.root:
            order = [self.root]
            for node in order:  # grows while it is read: breadth first
                order.extend(node.children.values())
            listed = self._listed = (self.root, order)
        return iter(listed[1])

    def tenant_label(self) -> str:
        """The tenant place, as errors name it."""
        places = [n.label for n in self._places() if n.role == "tenant"]
        return repr(places[0]) if places else "(this tree has none)"

    def route(self, path: tuple[str, ...], layer: Layer, *, first: bool = False) -> None:
        """Give the place at ``path`` one more caller input (highest-ranked when ``first``), then
        walk the tree again: a routed value may change what is built below it."""
        layers = self._routed.setdefault(path, [])
        layers.insert(0, layer) if first else layers.append(layer)
        self.root = self._walk()

    def node_at(self, path: tuple[str, ...]) -> PlanNode:
        """The node at ``path``."""
        node = self.root
        for name in path:
            node = node.children[name]
        return node

    # -- output -----------------------------------------------------------------------------

    def nodes(self) -> Iterator[PlanNode]:
        """Every node of the tree, root first."""
        return self._places()

    def kwargs(self, tenant: Any = None, node: PlanNode | None = None) -> dict[str, Any]:
        """Flat factory_boy keywords that realise the plan (or the subtree at ``node``), with the
        tree's tenant injected."""
        out: dict[str, Any] = {}
        _emit(node or self.root, "", out, tenant)
        return out

    @property
    def places(self) -> list[Place]:
        """Every place of the tree, breadth first: path, model, factory, winning values."""
        return [
            Place(
                n.label,
                n.model,
                n.factory,
                n.role,
                MappingProxyType(dict(n.fields)),
                tuple(n.traits),
                tuple(n.stopped),
            )
            for n in self._places()
        ]

    def place(self, path: str) -> Place:
        """The place at ``path`` (``"<root>"``, ``"project"``, ``"project.lead"``...)."""
        for place in self.places:
            if place.path == path:
                return place
        raise KeyError(f"{path!r} is not a place of this plan: {[p.path for p in self.places]}")

    @property
    def links(self) -> list[Link]:
        """Rows linked into the tree (``LinkOnly`` and instances passed as values)."""
        found = [Link(format_path(p), link.instance) for p, link in self._links]
        for node, name, value, _ in filled(self):
            if value.source == "caller" and value.value is not None:
                found.append(Link(format_path((*node.path, name)), value.value))
        return found

    def __repr__(self) -> str:
        tenant = f"\ntenant: {self.tenant}" if self.tenant is not None else ""
        links = "".join(f"\nlink {link.path}: {link.instance!r}" for link in self.links)
        body = "\n".join(repr(p) for p in self.places)
        return f"<CallPlan {self.name}.{self.strategy}>\n{body}{links}{tenant}"


def _enabled_traits(
    node: PlanNode, traits: Mapping[str, Mapping[str, Any]]
) -> tuple[list[str], frozenset[str]]:
    """Enabled traits, in the order the highest-ranked input enabled them, and the flags that
    are declarations (a LazyAttribute, an Iterator...), which factory_boy decides per object.

    A trait that enables another ranks its own fields above the pulled-in ones; a flag set by
    any input (even to False) is not overridden by a pull-in.
    """
    order: list[str] = []
    per_object: set[str] = set()

    def enable(name: str) -> None:
        if name in order:
            return
        order.append(name)
        for key, value in traits[name].items():
            if key in traits and key not in node.flags:
                if is_declaration(value):
                    per_object.add(key)
                elif value:
                    enable(key)

    for name, value in node.flags.items():
        if is_declaration(value.value):
            per_object.add(name)
        elif value.value:
            enable(name)
    return order, frozenset(per_object)


def _decided_targets(node: PlanNode, value: Any) -> list[Target]:
    """What a declaration builds at ``node``; for a ``Maybe``, the branch its decider picks when
    the plan knows the decider's value, else nothing (factory_boy decides per object)."""
    if not isinstance(value, Maybe):
        return targets_of(value)
    branch = decided_branch(node, value)
    return [] if branch is UNDECIDED else targets_of(branch)


UNDECIDED = object()
"""A ``Maybe`` whose decider factory_boy decides per object (the plan does not know it)."""


def running_hooks(node: PlanNode) -> list[str]:
    """The factory's post-generation declarations that run at ``node``: all but a ``Maybe``
    whose branch the plan knows and which runs nothing after the object is built (a trait's
    ``RelatedFactory`` while the trait is off, say)."""
    declared = node.factory._meta.post_declarations
    running = []
    for name in declared:
        value = declared[name].declaration
        while isinstance(value, Maybe):
            value = decided_branch(node, value)
        if (
            value is UNDECIDED
            or enums.get_builder_phase(value) == enums.BuilderPhase.POST_INSTANTIATION
        ):
            running.append(name)
    return running


def decided_branch(node: PlanNode, maybe: Maybe) -> Any:
    """The branch of ``maybe`` at ``node`` when the plan knows its decider's value (a trait
    flag, a Params value or a field set to a plain value), else ``UNDECIDED``."""
    name = decider_name(maybe)
    if name is None:
        return UNDECIDED
    shape = shape_of(node.factory)
    given = node.flags.get(name) or node.fields.get(name)
    if given is not None:
        decided = given.value
    elif name in shape.params:
        decided = shape.params[name]
    elif name in shape.traits:
        decided = False
    else:
        return UNDECIDED
    if is_declaration(decided):
        return UNDECIDED
    return maybe.yes if decided else maybe.no


def _pushed(source: str, node: PlanNode) -> str:
    """The source label of a value an ancestor pushes down (``trait admin at 'project'``)."""
    if source in CALLER_SOURCES or " at " in source:
        return source
    return f"{source} at {node.label!r}"


def _unlinked(source: str, values: Mapping[str, Any], plan: CallPlan, node: PlanNode) -> Any:
    """Unwrap ``LinkOnly`` values of a caller layer, remembering each link and its path."""
    if source not in ("caller", "customize", "link"):
        return values
    if not any(isinstance(v, LinkOnly) for v in values.values()):
        return values
    out = {}
    for key, value in values.items():
        if isinstance(value, LinkOnly):
            path = (*node.path, *key.split(SPLITTER))
            if all(p != path for p, _ in plan._links):
                plan._links.append((path, value))
            value = value.instance
        out[key] = value
    return out


def _emit(node: PlanNode, prefix: str, out: dict[str, Any], tenant: Any) -> None:
    # A trait-touched field is always given explicitly: the plan already chose its value, and
    # factory_boy then skips evaluating the trait's Maybe for it on every object.
    # Fields a per-object trait flag touches are left to factory_boy's own per-object Maybe,
    # unless the caller (or an ancestor) set them.
    shape = shape_of(node.factory)
    touched = shape.trait_fields
    per_object = (
        frozenset().union(*(shape.touched[t] for t in node.per_object))
        if node.per_object
        else frozenset()
    )
    for name, value in (*node.fields.items(), *node.flags.items()):
        if name in node.children and node.children[name].role != "build":
            continue
        if name in per_object and is_local(value.source):
            continue
        if is_emitted(value.source) or (name in touched and value.source == "default"):
            out[prefix + name] = value.value
    for name, layers in node.nested.items():
        for source, values in layers:
            if is_emitted(source):
                for key, value in values.items():
                    out.setdefault(f"{prefix}{name}{SPLITTER}{key}", value)
    if node.tenant is not None and tenant is not None:
        for key, value in tenant_keywords(node, tenant).items():
            out[prefix + key] = value
    for name, child in node.children.items():
        if child.role == "build":
            _emit(child, f"{prefix}{name}{SPLITTER}", out, tenant)
