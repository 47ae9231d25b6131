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

import copy
import datetime as dt
import difflib
import inspect as pyinspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from uuid import UUID

from factory import enums
from factory.declarations import SKIP, Maybe
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper

from .customizations import Customization, LinkOnly, Routed, format_path
from .errors import CustomizationError, FieldValueError, LinkOnlyError, UnknownFieldError
from .factory_boy_adapter import (
    SPLITTER,
    Target,
    decider_name,
    describe,
    is_declaration,
    overrides,
    shape_of,
    targets_of,
)
from .relationships import relationship_for_column
from .session import find_session

if TYPE_CHECKING:
    from .tenancy import TenantDecision, TenantSpec

MAX_DEPTH = 8
"""How deep the walk follows SubFactory/RelatedFactory chains (cycles stop it earlier)."""

CALLER_SOURCES = frozenset({"caller", "customize", "link", "link by key"})
"""Sources that are the caller's own word: unknown names and bad values among them are errors."""

Layer = tuple[str, Mapping[str, Any]]
"""One ranked input of a node: where the values came from, and the values."""

__all__ = ["CallPlan", "FieldValue", "Place", "PlanNode", "is_declaration", "targets_of"]


@dataclass(frozen=True)
class FieldValue:
    """The value that fills a field, and where it came from (caller, a trait, a default...)."""

    value: Any
    source: str

    def __repr__(self) -> str:
        return f"{describe(self.value)} [{self.source}]"


def _local(source: str) -> bool:
    """Whether a value comes from the node's own defaults or traits (not from above)."""
    return source == "default" or (source.startswith("trait ") and " at " not in source)


def _emitted(source: str) -> bool:
    """Whether factory_boy must be told this value (it produces defaults itself)."""
    return source != "default" and not source.startswith("declaration")


@dataclass(eq=False)
class PlanNode:
    """One place of the build tree (internal; the public read-only view is ``Place``)."""

    factory: Any
    path: tuple[str, ...]
    layers: list[Layer]
    provided: frozenset[str] = frozenset()
    fields: dict[str, FieldValue] = field(default_factory=dict)
    flags: dict[str, FieldValue] = field(default_factory=dict)
    traits: list[str] = field(default_factory=list)
    per_object: frozenset[str] = frozenset()
    """Trait flags whose value is a declaration: factory_boy decides them for each object."""
    nested: dict[str, list[Layer]] = field(default_factory=dict)
    children: dict[str, PlanNode] = field(default_factory=dict)
    tenant: TenantSpec | None = None
    role: str = "build"
    """``build``; ``tenant`` (the tree's tenant place); ``pinned`` (set to the tree's tenant)."""

    @property
    def model(self) -> type[Any]:
        """The model class built at this place."""
        model: type[Any] = self.factory._meta.model
        return model

    @property
    def label(self) -> str:
        """The path as users write it."""
        return format_path(self.path)

    def explicit(self) -> Iterator[tuple[str, FieldValue]]:
        """Own fields and flags the caller set here (keywords, customize, links)."""
        for name, value in (*self.fields.items(), *self.flags.items()):
            if value.source in CALLER_SOURCES:
                yield name, value


@dataclass(frozen=True)
class Place:
    """Read-only view of one place: what is built there, by which factory, from which values."""

    path: str
    model: type[Any]
    factory: Any
    role: str
    fields: Mapping[str, FieldValue]
    traits: tuple[str, ...]

    def __repr__(self) -> str:
        traits = f" traits={list(self.traits)}" if self.traits else ""
        role = "" if self.role == "build" else f" ({self.role})"
        head = f"{self.path}: {self.model.__name__} by {self.factory.__name__}{role}{traits}"
        body = [f"    {name} = {value!r}" for name, value in self.fields.items()]
        return "\n".join([head, *body])


@dataclass(frozen=True)
class Link:
    """A row the call links at a place instead of building one."""

    path: str
    instance: Any


_SIMPLE = (type(None), bool, int, float, str, bytes, Decimal, dt.date, dt.time, dt.timedelta, UUID)
_TEMPLATES: dict[tuple[Any, ...], CallPlan] = {}
TEMPLATE_LIMIT = 4096
"""Plans kept for reuse; the cache is emptied when it grows past this."""


def plan_call(
    factory_cls: Any, strategy: str, routed: tuple[Routed, ...], kwargs: Mapping[str, Any]
) -> CallPlan:
    """The plan of one call, reusing the walk of an earlier call of the same shape.

    Calls with the same factory, strategy, keys (in order), value types and truthiness, no
    positional routing and only plain values share one walk; the new call's values are bound
    into a copy of the nodes they address.
    """
    if routed or not all(isinstance(v, _SIMPLE) for v in kwargs.values()):
        return CallPlan(factory_cls, strategy, routed, kwargs)
    key = (factory_cls, strategy, *((k, type(v), bool(v)) for k, v in kwargs.items()))
    template = _TEMPLATES.get(key)
    if template is not None:
        return template.rebound(kwargs)
    plan = CallPlan(factory_cls, strategy, routed, kwargs)
    if not all(_addressed(plan.root, k) is not None for k in kwargs):
        return plan  # a key aims past the places (a Dict item, a post-generation extra)
    if len(_TEMPLATES) >= TEMPLATE_LIMIT:
        _TEMPLATES.clear()
    _TEMPLATES[key] = plan
    return plan.rebound(kwargs)


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
        self._routed: dict[tuple[str, ...], list[Layer]] = {}
        self._customized: dict[tuple[str, ...], Customization] = {}
        self._links: list[tuple[tuple[str, ...], LinkOnly]] = []
        self._caller: Layer = ("caller", kwargs)
        for item in routed:
            if not isinstance(item, (LinkOnly, Customization)):
                raise CustomizationError(
                    f"{self._name}: positional argument {item!r} is neither a customize() nor a "
                    "LinkOnly. Fix: pass field values as keywords, or wrap them in "
                    "customize(Model, ...)."
                )
        self.root = self._walk()
        for link in (r for r in routed if isinstance(r, LinkOnly)):
            self._route_link(link)
        for customization in (r for r in routed if isinstance(r, Customization)):
            self._route_customization(customization)
        self._validate()

    def rebound(self, kwargs: Mapping[str, Any]) -> CallPlan:
        """A copy of this plan with ``kwargs`` as the caller's values (same shape only)."""
        plan = copy.copy(self)
        plan._caller = ("caller", kwargs)
        plan.tenant = None
        if not kwargs:
            return plan
        copies: dict[int, PlanNode] = {}

        def own(node: PlanNode) -> PlanNode:
            mine = copies.get(id(node))
            if mine is None:
                mine = copies[id(node)] = copy.copy(node)
                mine.fields, mine.flags = dict(node.fields), dict(node.flags)
                mine.children = dict(node.children)
            return mine

        plan.root = own(self.root)
        for key, value in kwargs.items():
            node = plan.root
            *heads, name = key.split(SPLITTER)
            for head in heads:
                node.children[head] = node = own(node.children[head])
            target = node.flags if name in node.flags else node.fields
            target[name] = FieldValue(value, "caller")
        return plan

    @property
    def _name(self) -> str:
        name: str = self.factory.__name__
        return name

    # -- the walk ---------------------------------------------------------------------------

    def _walk(self) -> PlanNode:
        root = PlanNode(self.factory, (), [*self._routed.get((), []), self._caller])
        self._expand(root, frozenset())
        from .tenancy import place_tenant

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
        if len(node.path) >= MAX_DEPTH or node.factory in ancestors:
            return
        for name, value in node.fields.items():
            targets = _decided_targets(node, value.value) if name not in node.provided else []
            if targets:
                self._add_child(node, name, targets[0], ancestors | {node.factory})

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
        """A foreign-key value (``customer_id=7``) links that row: its place is skipped."""
        explicit = list(node.explicit())
        if not explicit or sa_inspect(node.model, raiseerr=False) is None:
            return
        for key, value in explicit:
            relation = relationship_for_column(node.model, key)
            if relation in (None, key) or is_declaration(value.value):
                continue
            current = node.fields.get(str(relation))
            if (
                current is not None
                and current.source not in CALLER_SOURCES
                and targets_of(current.value)
            ):
                node.fields[str(relation)] = FieldValue(SKIP, "link by key")

    # -- routing ----------------------------------------------------------------------------

    def _places(self) -> Iterator[PlanNode]:
        """Every node, breadth first (root first)."""
        queue = [self.root]
        while queue:
            node = queue.pop(0)
            yield node
            queue.extend(node.children.values())

    def _filled(self) -> Iterator[tuple[PlanNode, str, FieldValue, Target]]:
        """Declared places the caller filled with a value (a row, a link, None) instead."""
        for node in self._places():
            shape = shape_of(node.factory)
            for name, value in node.explicit():
                if name in node.children or is_declaration(value.value):
                    continue
                for target in targets_of(shape.declarations.get(name))[:1]:
                    yield node, name, value, target

    def _linked_places(self) -> Iterator[tuple[tuple[str, ...], type[Any]]]:
        """Places the caller filled with an instance, and the places they would have held."""
        for node, name, _, target in self._filled():
            yield from _declared_places(target.factory, (*node.path, name), frozenset())

    def _route(self, item: Routed, kind: str) -> PlanNode:
        wanted = item.model
        nodes = [n for n in self._places() if issubclass(wanted, n.model)]
        linked = [p for p, m in self._linked_places() if issubclass(wanted, m)]
        if item.path is not None:
            nodes = [n for n in nodes if n.path == item.path]
            linked = [p for p in linked if p == item.path]
        built = [n for n in nodes if n.role != "pinned"]
        if not built:
            taken = [format_path(p) for p in linked] + [n.label for n in nodes]
            if taken:
                raise CustomizationError(
                    f"{self._name}: {kind} for {wanted.__name__} targets "
                    f"{', '.join(repr(t) for t in taken)}, which is linked to an existing instance "
                    "(or lies inside one) or set to the tree's tenant, so nothing is built there. Fix: drop the override "
                    "or the link (to change the tree's tenant, customize the tenant place "
                    f"{self._tenant_label()})."
                )
            everywhere = ", ".join(repr(n.label) for n in self._places() if n.role != "pinned")
            at = f" at path {format_path(item.path)!r}" if item.path is not None else ""
            raise CustomizationError(
                f"{self._name}: {kind} for {wanted.__name__}{at} matches no place of the build "
                f"tree (places: {everywhere}). Fix: customize a model this factory builds, or "
                "give path= one of those places."
            )
        if len(built) > 1:
            shown = ", ".join(repr(n.label) for n in built)
            raise CustomizationError(
                f"{self._name}: {kind} for {wanted.__name__} is ambiguous: it is built at "
                f"{shown}. Fix: pass path= with one of them, e.g. path={built[0].label!r}."
            )
        return built[0]

    def _tenant_label(self) -> str:
        places = [n.label for n in self._places() if n.role == "tenant"]
        return repr(places[0]) if places else "(this tree has none)"

    def _route_link(self, link: LinkOnly) -> None:
        node = self._route(link, "LinkOnly")
        if not node.path:
            raise LinkOnlyError(
                f"{self._name}: LinkOnly({link.model.__name__}) routes to the root, which this "
                "call builds. Fix: link a related row, or just use the instance you have."
            )
        parent_path, name = node.path[:-1], node.path[-1]
        parent = self.node_at(parent_path)
        given = parent.fields.get(name)
        if given is not None and given.source in CALLER_SOURCES:
            raise CustomizationError(
                f"{self._name}: {node.label!r} is set twice: by a keyword and by "
                f"LinkOnly({link.model.__name__}). Fix: pass one of them."
            )
        inside = sorted(_explicit_inside(node))
        if inside:
            _inside_linked(self._name, node.label, inside, "is linked with LinkOnly")
        self._routed.setdefault(parent_path, []).insert(0, ("link", {name: link}))
        self.root = self._walk()

    def _route_customization(self, customization: Customization) -> None:
        node = self._route(customization, "customize()")
        earlier = self._customized.get(node.path)
        if earlier is not None:
            raise CustomizationError(
                f"{self._name}: two customizations target {node.label!r} ({earlier!r} and "
                f"{customization!r}). Fix: merge them into one."
            )
        clash = sorted(k for k, _ in node.explicit() if k in customization.fields)
        if clash:
            raise CustomizationError(
                f"{self._name}: {customization!r} and a keyword argument both set "
                f"{', '.join(clash)} at {node.label!r}. Fix: set each field once."
            )
        self._customized[node.path] = customization
        self._routed.setdefault(node.path, []).append(("customize", customization.fields))
        self.root = self._walk()

    def node_at(self, path: tuple[str, ...]) -> PlanNode:
        """The node at ``path``."""
        node = self.root
        for name in path:
            node = node.children[name]
        return node

    # -- validation -------------------------------------------------------------------------

    def _validate(self) -> None:
        self.check_links()
        for node in self._places():
            self._check_nested(node)
            if node.role == "pinned" and any(True for _ in node.explicit()):
                keys = ", ".join(sorted(name for name, _ in node.explicit()))
                raise CustomizationError(
                    f"{self._name}: {keys} at {node.label!r} customize a row that is set to the "
                    f"tree's tenant. Fix: customize the tenant place {self._tenant_label()} "
                    "instead."
                )
            for name, value in node.explicit():
                self._check_field(node, name, value.value)

    def _check_nested(self, node: PlanNode) -> None:
        """Caller keys aimed inside a place that holds an instance would be dropped: refuse."""
        shape = shape_of(node.factory)
        for name, layers in node.nested.items():
            keys = sorted(
                f"{name}{SPLITTER}{k}" for s, v in layers if s in CALLER_SOURCES for k in v
            )
            if not keys:
                continue
            given = node.fields.get(name)
            declared = shape.declarations.get(name)
            if given is not None and given.source in CALLER_SOURCES and targets_of(declared):
                how = "is linked with LinkOnly" if given.source == "link" else "received a value"
                if given.source == "caller" and sa_inspect(given.value, raiseerr=False) is not None:
                    how = "received an instance"
                _inside_linked(self._name, format_path((*node.path, name)), keys, how)
            if node.tenant is not None and name == node.tenant.relationship:
                raise CustomizationError(
                    f"{self._name}: {', '.join(keys)} at {node.label!r} customize a tenant "
                    "that is set to the tree's tenant. Fix: customize the tenant place "
                    f"{self._tenant_label()} (customize(TenantModel, ...)) instead."
                )
            if name not in shape.known and not _accepts(node, name):
                self._unknown(node, name)

    def _check_field(self, node: PlanNode, key: str, value: Any) -> None:
        shape = shape_of(node.factory)
        attributes = _attributes(node.model)
        if key in shape.known and (attributes is None or key not in attributes):
            return  # a Param, trait, rename, exclude, post-generation name or ``__sequence``
        if not key or key.startswith(SPLITTER) or key.endswith(SPLITTER):
            raise UnknownFieldError(
                f"{node.factory.__name__}: keyword {key!r}{self._at(node)} has an empty part "
                f"around {SPLITTER!r}. Fix: name a field ({key.strip('_')!r}) or a field of a "
                f"place ('place{SPLITTER}field')."
            )
        if key in shape.post:
            return  # a post-generation name: factory_boy's to judge
        if not _accepts(node, key):
            self._unknown(node, key)
        _check_attribute_value(node, key, value, self._name + self._at(node))

    def _unknown(self, node: PlanNode, name: str) -> None:
        shape = shape_of(node.factory)
        names = shape.known | (_attributes(node.model) or frozenset())
        close = difflib.get_close_matches(name, sorted(names), 3)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownFieldError(
            f"{node.factory.__name__}: unknown field {name!r}{self._at(node)}.{hint} Fix: use a "
            f"column or relationship of {node.model.__name__}, or a declaration, Param or trait "
            f"of {node.factory.__name__}."
        )

    def _at(self, node: PlanNode) -> str:
        return f" (at {node.label!r} under {self._name})" if node.path else ""

    def check_links(self) -> None:
        """Linked rows must be rows of the right model, written, and in the factory's session."""
        for path, link in self._links:
            where = format_path(path)
            parent = self.node_at(path[:-1])
            targets = targets_of(shape_of(parent.factory).declarations.get(path[-1]))
            if targets and not isinstance(link.instance, targets[0].factory._meta.model):
                expected = targets[0].factory._meta.model.__name__
                raise LinkOnlyError(
                    f"{self._name}: LinkOnly({type(link.instance).__name__}) at {where!r} where "
                    f"a {expected} is built. Fix: link a {expected} instance there."
                )
            if self.strategy != enums.CREATE_STRATEGY:
                continue
            state = sa_inspect(link.instance, raiseerr=False)
            if state is None:
                raise LinkOnlyError(
                    f"{self._name}: LinkOnly at {where!r} got {link.instance!r}, which is not a "
                    "mapped SQLAlchemy instance. Fix: link a row of the model built there."
                )
            if state.deleted or state.was_deleted or not state.has_identity:
                status = (
                    "deleted" if state.deleted or state.was_deleted else "not yet in the database"
                )
                raise LinkOnlyError(
                    f"{self._name}: LinkOnly({type(link.instance).__name__}) at {where!r} is "
                    f"{status}; create() can only link persistent rows. Fix: add and flush it "
                    "first (or create it with its factory), or use build()."
                )
            own = find_session(parent.factory)
            if state.session is not None and own is not None and state.session is not own:
                raise LinkOnlyError(
                    f"{self._name}: LinkOnly({type(link.instance).__name__}) at {where!r} "
                    f"belongs to another open session than the one {parent.factory.__name__} "
                    "writes through. Fix: link a row of that session (session.get(Model, id) or "
                    "session.merge(row)), or bind the same session."
                )

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
        for node, name, value, _ in self._filled():
            if value.source == "caller" and value.value is not None:
                found.append(Link(format_path((*node.path, name)), value.value))
        return found

    def __repr__(self) -> str:
        tenant = f"\ntenant: {self.tenant}" if self.tenant is not None else ""
        links = "".join(f"\nlink {link.path}: {link.instance!r}" for link in self.links)
        body = "\n".join(repr(p) for p in self.places)
        return f"<CallPlan {self._name}.{self.strategy}>\n{body}{links}{tenant}"


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
    name = decider_name(value)
    if name is None:
        return []
    shape = shape_of(node.factory)
    given = node.flags.get(name) or node.fields.get(name)
    if given is not None:
        decided = given.value
    elif name in shape.params:
        decided = shape.params[name]
    elif name in shape.traits:
        decided = False
    else:
        return []
    if is_declaration(decided):
        return []
    return targets_of(value.yes if decided else value.no)


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


def _explicit_inside(node: PlanNode) -> Iterator[str]:
    """Caller keys set at or below ``node`` (they would be dropped if it were linked)."""
    for name, _ in node.explicit():
        yield f"{node.path[-1]}{SPLITTER}{name}" if node.path else name
    for child in node.children.values():
        for key in _explicit_inside(child):
            yield f"{node.path[-1]}{SPLITTER}{key}" if node.path else key


def _inside_linked(root: str, where: str, keys: list[str], how: str) -> None:
    raise CustomizationError(
        f"{root}: override(s) {', '.join(keys)} target the inside of {where!r}, which {how}, "
        "so they would be dropped. Fix: set those fields on the instance itself, or build the "
        "place instead of linking it."
    )


_ATTRIBUTES: dict[Any, frozenset[str] | None] = {}

HOOKS = ("_create", "_build", "_adjust_kwargs")
"""Class methods that see a call's keywords: a factory overriding one may consume any name."""


def _accepts(node: PlanNode, name: str) -> bool:
    """Whether the model (or the factory's own hooks) at ``node`` can take keyword ``name``."""
    names = _attributes(node.model)
    return names is None or name in names or overrides(node.factory, *HOOKS)


def _attributes(model: Any) -> frozenset[str] | None:
    """Names a model's constructor accepts (cached); ``None`` when it takes any name."""
    if model not in _ATTRIBUTES:
        _ATTRIBUTES[model] = _read_attributes(model)
    return _ATTRIBUTES[model]


def _read_attributes(model: Any) -> frozenset[str] | None:
    """Mapped classes: their mapped and plain attributes. Other classes (dataclasses, dict...):
    their constructor's parameters, or any name when it takes ``**kwargs`` or has no signature."""
    plain = {n for n in dir(model) if not n.startswith("_")}
    mapper = sa_inspect(model, raiseerr=False)
    if isinstance(mapper, Mapper):
        return frozenset({*mapper.all_orm_descriptors.keys(), *plain})
    try:
        parameters = pyinspect.signature(model).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    named = (pyinspect.Parameter.POSITIONAL_OR_KEYWORD, pyinspect.Parameter.KEYWORD_ONLY)
    return frozenset({*plain, *(p.name for p in parameters if p.kind in named)})


def _check_attribute_value(node: PlanNode, key: str, value: Any, where: str) -> None:
    """Refuse values the model cannot take: read-only attributes, wrong relationship values."""
    model = node.model
    static = pyinspect.getattr_static(model, key, None)
    if isinstance(static, property) and static.fset is None:
        raise FieldValueError(
            f"{where}: {model.__name__}.{key} is a read-only property, so it cannot be set. "
            f"Fix: set the column(s) it is computed from instead of {key!r}."
        )
    mapper = sa_inspect(model, raiseerr=False)
    if not isinstance(mapper, Mapper):
        return
    descriptor = mapper.all_orm_descriptors.get(key)
    if descriptor is not None and getattr(descriptor, "fset", True) is None:
        raise FieldValueError(
            f"{where}: {model.__name__}.{key} is a hybrid property without a setter. Fix: set "
            "the column(s) it is computed from instead."
        )
    relation = mapper.relationships.get(key)
    if relation is None or value is None or value is SKIP or is_declaration(value):
        return
    target = relation.mapper.class_
    if relation.uselist:
        items = list(value) if isinstance(value, (list, tuple, set, frozenset)) else None
        if items is not None and all(isinstance(i, target) for i in items):
            return
        expected = f"a list of {target.__name__} instances"
    else:
        if isinstance(value, target):
            return
        expected = f"a {target.__name__} instance (or None)"
    columns = ", ".join(f"{c.key}=" for c in relation.local_columns)
    by_key = f", or {columns}<key> to link a row by its key" if not relation.uselist else ""
    raise FieldValueError(
        f"{where}: field {key!r} of {node.factory.__name__} takes {expected}, got "
        f"{type(value).__name__} {value!r}. Fix: pass {expected}{by_key}."
    )


def _emit(node: PlanNode, prefix: str, out: dict[str, Any], tenant: Any) -> None:
    # A trait-touched field is always given explicitly: the plan already chose its value, and
    # factory_boy then skips evaluating the trait's Maybe for it on every object.
    # Fields a per-object trait flag touches are left to factory_boy's own per-object Maybe,
    # unless the caller (or an ancestor) set them.
    shape = shape_of(node.factory)
    touched = shape.trait_fields
    per_object = frozenset().union(*(shape.touched_by(t) for t in node.per_object))
    for name, value in (*node.fields.items(), *node.flags.items()):
        if name in node.children and node.children[name].role != "build":
            continue
        if name in per_object and _local(value.source):
            continue
        if _emitted(value.source) or (name in touched and value.source == "default"):
            out[prefix + name] = value.value
    for name, layers in node.nested.items():
        for source, values in layers:
            if _emitted(source):
                for key, value in values.items():
                    out.setdefault(f"{prefix}{name}{SPLITTER}{key}", value)
    if node.tenant is not None and tenant is not None:
        from .tenancy import tenant_keywords

        for key, value in tenant_keywords(node, tenant).items():
            out[prefix + key] = value
    for name, child in node.children.items():
        if child.role == "build":
            _emit(child, f"{prefix}{name}{SPLITTER}", out, tenant)
