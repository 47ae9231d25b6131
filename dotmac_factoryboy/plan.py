"""The call plan: keywords, traits, ``customize()`` and ``LinkOnly`` resolved into one validated
override tree before factory_boy builds anything, so every misuse fails before the first INSERT.

Priority, field by field: caller overrides > traits in the order the caller enabled them >
declarations. The plan makes that explicit by emitting the winning trait value for every field an
enabled trait touches, which replaces factory_boy's "trait declared last wins" rule.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import factory
from factory import enums
from factory.declarations import SKIP, Maybe, RelatedFactory, SubFactory, Trait
from sqlalchemy import inspect as sa_inspect

from .customizations import Customization, LinkOnly, Routed, format_path
from .errors import CustomizationError, LinkOnlyError, UnknownFieldError
from .relationships import relationship_for_column

SPLITTER: str = enums.SPLITTER
MAX_DEPTH = 8
"""How deep routing looks into SubFactory/RelatedFactory chains (cycles stop earlier)."""


def is_declaration(value: Any) -> bool:
    """True for factory_boy declarations (lazy values), False for plain values and instances."""
    return enums.get_builder_phase(value) is not None


def subfactory_defaults(declaration: SubFactory) -> Mapping[str, Any]:
    """The keyword defaults given to a SubFactory declaration.

    factory_boy keeps them in the private ``_defaults`` attribute and offers no public accessor;
    this is the one place that reads it.
    """
    defaults: Mapping[str, Any] = getattr(declaration, "_defaults", {})
    return defaults


@dataclass(frozen=True)
class Target:
    """What a declaration builds: a factory, its declared defaults, and names filled at run time."""

    factory: Any
    defaults: Mapping[str, Any]
    provided: frozenset[str] = frozenset()


def targets_of(value: Any) -> list[Target]:
    """The model factories a declaration may invoke (both branches of a ``Maybe``)."""
    if isinstance(value, (factory.Dict, factory.List)):
        return []
    if isinstance(value, SubFactory):
        found = [Target(value.get_factory(), subfactory_defaults(value))]
    elif isinstance(value, RelatedFactory):
        provided = frozenset({value.name}) if value.name else frozenset()
        found = [Target(value.get_factory(), dict(value.defaults), provided)]
    elif isinstance(value, Maybe):
        found = targets_of(value.yes) + targets_of(value.no)
    else:
        return []
    return [t for t in found if getattr(t.factory._meta, "model", None) is not None]


@dataclass(eq=False)
class PlanNode:
    """One place of the build tree: the factory that runs there and what the caller set for it."""

    factory: Any
    path: tuple[str, ...]
    lower: Mapping[str, Any] = field(default_factory=dict)
    provided: frozenset[str] = frozenset()
    caller: dict[str, Any] = field(default_factory=dict)
    children: dict[str, PlanNode] = field(default_factory=dict)
    linked: set[str] = field(default_factory=set)
    customization: Customization | None = None

    @property
    def model(self) -> type[Any]:
        """The model class built at this place."""
        model: type[Any] = self.factory._meta.model
        return model

    @property
    def label(self) -> str:
        """The path as users write it."""
        return format_path(self.path)

    def traits(self) -> dict[str, Any]:
        """Winning trait values for fields the caller did not set, by call-order priority."""
        traits = {n: p for n, p in self.factory._meta.parameters.items() if isinstance(p, Trait)}
        order: list[str] = []

        def enable(name: str) -> None:
            if name in order:
                return
            order.append(name)
            for key, value in traits[name].overrides.items():
                if key in traits and value and key not in self.caller:
                    enable(key)

        for source in (self.caller, self.lower):
            for key, value in source.items():
                if key in traits and value and (source is self.caller or key not in self.caller):
                    enable(key)
        values: dict[str, Any] = {}
        for name in order:
            for key, value in traits[name].overrides.items():
                if key not in traits and key not in self.caller:
                    values.setdefault(key, value)
        return values

    def declaration(self, name: str, traits: Mapping[str, Any]) -> Any:
        """The value that will fill ``name`` here: caller > trait > declared default."""
        for source in (self.caller, traits, self.lower):
            if name in source:
                return source[name]
        return self.factory._meta.base_declarations.get(name)

    def child(self, name: str, target: Target) -> PlanNode:
        """The node for the place at ``name``, created on first use."""
        if name not in self.children:
            self.children[name] = PlanNode(
                factory=target.factory,
                path=(*self.path, name),
                lower=target.defaults,
                provided=target.provided,
            )
        return self.children[name]


@dataclass(frozen=True)
class Place:
    """A place that builds (or, when ``linked``, would have built) a model."""

    node: PlanNode
    linked: bool = False

    @property
    def path(self) -> tuple[str, ...]:
        """Path from the root."""
        return self.node.path

    @property
    def model(self) -> type[Any]:
        """The model built there."""
        return self.node.model


def iter_places(node: PlanNode, ancestors: frozenset[Any] = frozenset()) -> Iterator[Place]:
    """Every place of the tree below ``node``, creating nodes as it goes."""
    yield Place(node)
    if len(node.path) >= MAX_DEPTH or node.factory in ancestors:
        return
    traits = node.traits()
    names = {
        n
        for n in (*node.factory._meta.base_declarations, *node.caller, *traits, *node.lower)
        if SPLITTER not in n and n not in node.provided
    }
    for name in sorted(names):
        value = node.declaration(name, traits)
        if name in node.caller and not is_declaration(value):
            for target in targets_of(node.factory._meta.base_declarations.get(name))[:1]:
                hidden = PlanNode(
                    target.factory, (*node.path, name), target.defaults, target.provided
                )
                for place in iter_places(hidden, ancestors | {node.factory}):
                    yield Place(place.node, linked=True)
            continue
        for target in targets_of(value)[:1]:
            yield from iter_places(node.child(name, target), ancestors | {node.factory})


class CallPlan:
    """The validated override tree of one factory call, and its flat factory_boy keywords."""

    def __init__(
        self,
        factory_cls: Any,
        strategy: str,
        routed: tuple[Routed, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        self.root = PlanNode(factory=factory_cls, path=())
        self.strategy = strategy
        self.links: list[tuple[PlanNode, str, LinkOnly]] = []
        self._fill(self.root, kwargs)
        for item in routed:
            if isinstance(item, LinkOnly):
                self._route_link(item)
            elif not isinstance(item, Customization):
                raise CustomizationError(
                    f"{self._root_name}: positional argument {item!r} is neither a customize() "
                    "nor a LinkOnly. Fix: pass field values as keywords, or wrap them in "
                    "customize(Model, ...)."
                )
        customizations = [c for c in routed if isinstance(c, Customization)]
        for customization in customizations:
            self._route_customization(customization)
        self._validate(self.root)
        self._check_links()

    @property
    def _root_name(self) -> str:
        name: str = self.root.factory.__name__
        return name

    # -- building the tree ------------------------------------------------------------------

    def _fill(self, node: PlanNode, items: Mapping[str, Any]) -> None:
        """Insert keyword overrides, own fields first so nested keys see enabled traits."""
        nested: dict[str, dict[str, Any]] = {}
        for key, value in items.items():
            name, _, rest = key.partition(SPLITTER)
            if not rest or not name:
                self._set(node, key, value)
            else:
                nested.setdefault(name, {})[rest] = value
        traits = node.traits()
        self._link_by_key(node, traits)
        for name, sub in nested.items():
            value = node.declaration(name, traits)
            if name in node.caller and not is_declaration(value):
                self._inside_linked(node, name, [f"{name}{SPLITTER}{k}" for k in sub])
            targets = targets_of(value)
            if not targets:
                for rest, sub_value in sub.items():
                    node.caller[f"{name}{SPLITTER}{rest}"] = sub_value
                continue
            self._fill(node.child(name, targets[0]), sub)

    def _link_by_key(self, node: PlanNode, traits: Mapping[str, Any]) -> None:
        """A foreign-key value (``customer_id=7``) links that row: its SubFactory is skipped."""
        if sa_inspect(node.model, raiseerr=False) is None:
            return
        for key, value in list(node.caller.items()):
            relation = relationship_for_column(node.model, key)
            if relation in (None, key) or relation in node.caller or is_declaration(value):
                continue
            if targets_of(node.declaration(str(relation), traits)):
                node.caller[str(relation)] = SKIP

    def _set(self, node: PlanNode, name: str, value: Any) -> None:
        if isinstance(value, LinkOnly):
            node.linked.add(name)
            self.links.append((node, name, value))
            value = value.instance
        node.caller[name] = value

    def _inside_linked(self, node: PlanNode, name: str, keys: list[str]) -> None:
        how = "is linked with LinkOnly" if name in node.linked else "received an instance"
        where = format_path((*node.path, name))
        raise CustomizationError(
            f"{self._root_name}: override(s) {', '.join(sorted(keys))} target the inside of "
            f"'{where}', which {how}, so they would be dropped. Fix: set those fields on the "
            "instance itself, or build the place instead of linking it."
        )

    # -- routing ----------------------------------------------------------------------------

    def _candidates(self, model: type[Any], path: tuple[str, ...] | None) -> list[Place]:
        places = [p for p in iter_places(self.root) if issubclass(model, p.model)]
        if path is not None:
            places = [p for p in places if p.path == path]
        return places

    def _route(self, item: Routed, kind: str) -> Place:
        wanted = item.model
        candidates = self._candidates(wanted, item.path)
        built = [p for p in candidates if not p.linked]
        shown = ", ".join(repr(format_path(p.path)) for p in candidates)
        if not built:
            if candidates:
                raise CustomizationError(
                    f"{self._root_name}: {kind} for {wanted.__name__} targets {shown}, which is "
                    "linked to an existing instance (or lies inside one), so nothing is built "
                    "there. Fix: drop the override or the link."
                )
            everywhere = ", ".join(
                repr(p.node.label) for p in iter_places(self.root) if not p.linked
            )
            at = f" at path {format_path(item.path)!r}" if item.path is not None else ""
            raise CustomizationError(
                f"{self._root_name}: {kind} for {wanted.__name__}{at} matches no place of the "
                f"build tree (places: {everywhere}). Fix: customize a model this factory builds, "
                "or give path= one of those places."
            )
        if len(built) > 1:
            raise CustomizationError(
                f"{self._root_name}: {kind} for {wanted.__name__} is ambiguous: it is built at "
                f"{shown}. Fix: pass path= with one of them, e.g. path={format_path(built[0].path)!r}."
            )
        return built[0]

    def _route_link(self, link: LinkOnly) -> None:
        place = self._route(link, "LinkOnly")
        if not place.path:
            raise LinkOnlyError(
                f"{self._root_name}: LinkOnly({link.model.__name__}) routes to the root, which "
                "this call builds. Fix: link a related row, or just use the instance you have."
            )
        node = place.node
        parent = self._node_at(place.path[:-1])
        name = place.path[-1]
        if name in parent.caller:
            raise CustomizationError(
                f"{self._root_name}: {format_path(place.path)!r} is set twice: by a keyword and by "
                f"LinkOnly({link.model.__name__}). Fix: pass one of them."
            )
        if node.caller or node.customization is not None:
            self._inside_linked(parent, name, [*(f"{name}{SPLITTER}{k}" for k in node.caller)])
        parent.children.pop(name, None)
        self._set(parent, name, link)

    def _route_customization(self, customization: Customization) -> None:
        node = self._route(customization, "customize()").node
        if node.customization is not None:
            raise CustomizationError(
                f"{self._root_name}: two customizations target {node.label!r} "
                f"({node.customization!r} and {customization!r}). Fix: merge them into one."
            )
        node.customization = customization
        clash = sorted(k for k in customization.fields if k in node.caller)
        if clash:
            raise CustomizationError(
                f"{self._root_name}: {customization!r} and a keyword argument both set "
                f"{', '.join(clash)} at {node.label!r}. Fix: set each field once."
            )
        self._fill(node, customization.fields)

    def _node_at(self, path: tuple[str, ...]) -> PlanNode:
        node = self.root
        for name in path:
            node = node.children[name]
        return node

    # -- validation -------------------------------------------------------------------------

    def _validate(self, node: PlanNode) -> None:
        meta = node.factory._meta
        known = {
            *meta.pre_declarations,
            *meta.post_declarations,
            *meta.parameters,
            *meta.rename,
            "__sequence",
        }
        for key in node.caller:
            name = key.partition(SPLITTER)[0] or key
            if name in known or (not name.startswith("_") and hasattr(node.model, name)):
                continue
            mapper = sa_inspect(node.model, raiseerr=False)
            names = known | set(mapper.all_orm_descriptors.keys() if mapper is not None else ())
            close = difflib.get_close_matches(name, sorted(names), n=3)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            where = f" (at {node.label!r} under {self._root_name})" if node.path else ""
            raise UnknownFieldError(
                f"{node.factory.__name__}: unknown field {name!r}{where}.{hint} Fix: use a "
                f"column or relationship of {node.model.__name__}, or a declaration, Param or "
                f"trait of {node.factory.__name__}."
            )
        for child in node.children.values():
            self._validate(child)

    def _check_links(self) -> None:
        for node, name, link in self.links:
            where = format_path((*node.path, name))
            targets = targets_of(node.factory._meta.base_declarations.get(name))
            if targets and not isinstance(link.instance, targets[0].factory._meta.model):
                expected = targets[0].factory._meta.model.__name__
                raise LinkOnlyError(
                    f"{self._root_name}: LinkOnly({type(link.instance).__name__}) at {where!r} "
                    f"where a {expected} is built. Fix: link a {expected} instance there."
                )
            if self.strategy != enums.CREATE_STRATEGY:
                continue
            state = sa_inspect(link.instance, raiseerr=False)
            if state is None:
                raise LinkOnlyError(
                    f"{self._root_name}: LinkOnly at {where!r} got {link.instance!r}, which is "
                    "not a mapped SQLAlchemy instance. Fix: link a row of the model built there."
                )
            if state.deleted or state.was_deleted or not state.has_identity:
                status = (
                    "deleted" if state.deleted or state.was_deleted else "not yet in the database"
                )
                raise LinkOnlyError(
                    f"{self._root_name}: LinkOnly({type(link.instance).__name__}) at {where!r} "
                    f"is {status}; create() can only link persistent rows. Fix: add and flush "
                    "it first (or create it with its factory), or use build()."
                )

    # -- output -----------------------------------------------------------------------------

    def nodes(self) -> Iterator[PlanNode]:
        """Every node of the tree, root first."""
        stack = [self.root]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(node.children.values())

    def kwargs(self) -> dict[str, Any]:
        """Flat factory_boy keywords that realise the plan."""
        return _flatten(self.root)


def _flatten(node: PlanNode) -> dict[str, Any]:
    out = dict(node.traits())
    out.update(node.caller)
    for name, child in node.children.items():
        if name in node.caller and not is_declaration(node.caller[name]):
            continue
        for key, value in _flatten(child).items():
            out[f"{name}{SPLITTER}{key}"] = value
    return out
