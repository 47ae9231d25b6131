"""Every read of factory_boy internals, in one place.

factory_boy offers no public API to list a factory's declarations, traits or SubFactory keyword
defaults. The call plan needs all three, so this module reads them from the private attributes
factory_boy 3.3 keeps them in, each with a comment; nothing else in the package touches them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import factory
from factory import enums
from factory.declarations import Maybe, RelatedFactory, SelfAttribute, SubFactory, Trait

SPLITTER: str = enums.SPLITTER
"""``"__"``: factory_boy's separator between a place and a field of it."""


R = TypeVar("R")


def per_class(func: Callable[..., R]) -> Callable[..., R]:
    """Cache ``func(factory_cls, *args)`` per class, for as long as the class lives: a class
    with a body of its own is weakly keyed (``functools.cache`` would keep pytest-factoryboy's
    throwaway subclasses, and the rows their calls were given, to the end of the run); an empty
    subclass shares its parent's entry while their declarations are the same (``declared_key``)."""
    results: WeakKeyDictionary[Any, dict[tuple[Any, ...], R]] = WeakKeyDictionary()
    alike: dict[Any, dict[tuple[Any, ...], R]] = {}

    @wraps(func)
    def cached(factory_cls: Any, *args: Any) -> R:
        key = declared_key(factory_cls)
        known = (
            results.setdefault(factory_cls, {}) if key is factory_cls else alike.setdefault(key, {})
        )
        if args not in known:
            known[args] = func(factory_cls, *args)
        return known[args]

    return cached


_EMPTY_BODY = frozenset({"__module__", "__doc__", "__qualname__", "__parameters__", "_meta"})
"""What a subclass with an empty body holds (``__parameters__``: typing's Generic)."""
_CALL_TIME = frozenset({"_after_postgeneration", "_original_params"})
"""Per-call state kept on the class: pytest-factoryboy disables ``_after_postgeneration`` on
its throwaway class around the call, SQLAlchemyModelFactory keeps the call's keywords. Neither
decides anything a plan or a parse reads."""
_BARE = _EMPTY_BODY | _CALL_TIME
_OWN_OPTIONS = frozenset(
    {
        "factory",
        "base_factory",
        "counter_reference",
        "_counter",
        "base_declarations",
        "pre_declarations",
        "post_declarations",
        "parameters",
        "parameters_dependencies",
    }
)
"""Options every subclass gets anew (compared by content); the others must be the parent's."""
_KEYS: WeakKeyDictionary[Any, tuple[tuple[Any, ...], Any]] = WeakKeyDictionary()


def declared_key(factory_cls: Any) -> Any:
    """What a factory's plans and parsed declarations depend on: the class itself, or for a
    subclass with an empty body (pytest-factoryboy makes one per model fixture call, then edits
    its ``_meta``) its parent's key and its own declarations, so calls through such subclasses
    share what was worked out once.

    Reads factory_boy's private ``_meta`` options (``base_declarations``, the parsed
    ``pre_declarations`` / ``post_declarations`` and their ``declarations`` / ``contexts``,
    ``parameters``); remembered per class until pytest-factoryboy replaces one of them.
    """
    meta = getattr(factory_cls, "_meta", None)
    if meta is None or not vars(factory_cls).keys() <= _BARE:
        return factory_cls
    marks = (meta.base_declarations, meta.pre_declarations, meta.post_declarations)
    remembered = _KEYS.get(factory_cls)
    if remembered is not None and all(a is b for a, b in zip(remembered[0], marks, strict=True)):
        return remembered[1]
    key = _equivalence(factory_cls, meta)
    _KEYS[factory_cls] = (marks, key)
    return key


def lasting_class(factory_cls: Any) -> Any:
    """The nearest class of ``factory_cls``'s line with a body of its own (``factory_cls`` unless
    it is an empty subclass): what a cache may keep in its place."""
    while declared_key(factory_cls) is not factory_cls:
        factory_cls = factory_cls.__mro__[1]
    return factory_cls


def without_values(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """A call's keywords as a cache keeps them: declarations (the classes hold them anyway),
    every other value (rows, a test's data) as None."""
    return {k: v if is_declaration(v) else None for k, v in kwargs.items()}


def _equivalence(factory_cls: Any, meta: Any) -> Any:
    parent = factory_cls.__mro__[1]
    theirs = getattr(parent, "_meta", None)
    if theirs is None or not is_factory(parent):
        return factory_cls
    mine = vars(meta)
    if any(mine[k] is not vars(theirs).get(k) for k in mine.keys() - _OWN_OPTIONS):
        return factory_cls  # an option set on the subclass after it was made

    def parsed(declarations: Any) -> tuple[Any, ...]:
        contexts = tuple((k, tuple(c.items())) for k, c in declarations.contexts.items() if c)
        return (tuple(declarations.declarations.items()), contexts)

    key = (
        declared_key(parent),
        tuple(meta.base_declarations.items()),
        tuple(meta.parameters.items()),
        parsed(meta.pre_declarations),
        parsed(meta.post_declarations),
    )
    try:
        hash(key)
    except TypeError:  # a raw class attribute that is a list or dict: this class alone
        return factory_cls
    return key


def is_declaration(value: Any) -> bool:
    """True for factory_boy declarations (lazy values), False for plain values and instances."""
    return enums.get_builder_phase(value) is not None


def describe(value: Any) -> str:
    """A short readable form of a value or declaration, for plan reprs and lint reports."""
    if not is_declaration(value):
        return repr(value)
    kind = type(value).__name__
    if isinstance(value, factory.Faker):
        return f"{kind}({value.provider!r})"
    if isinstance(value, (SubFactory, RelatedFactory)):
        return f"{kind}({value.get_factory().__name__})"  # type: ignore[no-untyped-call]
    path = getattr(value, "attribute_name", None)  # SelfAttribute
    if isinstance(path, str):
        return f"{kind}({path!r})"
    function = getattr(value, "function", None)  # Sequence, LazyFunction, LazyAttribute...
    if function is not None:
        return f"{kind}({getattr(function, '__qualname__', repr(function))})"
    return kind


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
        # SubFactory keeps its keyword defaults in the private ``_defaults`` (no accessor).
        found = [Target(value.get_factory(), dict(getattr(value, "_defaults", {})))]
    elif isinstance(value, RelatedFactory):
        provided = frozenset({value.name}) if value.name else frozenset()
        found = [Target(value.get_factory(), dict(value.defaults), provided)]
    elif isinstance(value, Maybe):
        found = targets_of(value.yes) + targets_of(value.no)
    else:
        return []
    # SubFactory(Model) (a model, not a factory) has no place: the build raises factory_boy's
    # own AssociatedClassError when it recurses into it.
    return [
        t
        for t in found
        if is_factory(t.factory) and getattr(t.factory._meta, "model", None) is not None
    ]


STOCK_BASES: set[type] = {factory.base.BaseFactory, factory.base.Factory}
"""Base classes whose hooks are the stock ones; ``factories`` adds ours."""


@per_class
def overrides(factory_cls: Any, *names: str) -> bool:
    """Whether a user's class between ``factory_cls`` and the stock bases defines one of
    ``names`` (``_create``, ``_generate``...): its own code then decides what happens.

    Factory classes are immutable once defined (as ``shape_of`` assumes), so it is cached.
    """
    for klass in factory_cls.__mro__:
        if klass in STOCK_BASES:
            return False
        if any(name in vars(klass) for name in names):
            return True
    return False


def is_factory(value: Any) -> bool:
    """True for a factory class (what SubFactory and friends may recurse into)."""
    return isinstance(value, type) and issubclass(value, factory.base.BaseFactory)


def owns_sequence(factory_cls: Any) -> bool:
    """True when ``factory_cls`` keeps its own sequence counter (subclasses share their parent's).

    ``reset_sequence()`` on a subclass that shares a counter raises; factory_boy keeps the owner in
    the private ``_meta.counter_reference``.
    """
    return bool(factory_cls._meta.counter_reference is factory_cls._meta)


def reset_sequences(factories: Iterable[Any], start: int | None = None) -> None:
    """Restart every factory's sequence (at ``start``, else its first value), each counter once:
    a factory sharing its parent's counter is skipped, as resetting it would raise."""
    for factory_cls in factories:
        if owns_sequence(factory_cls):
            factory_cls.reset_sequence(start)


def meta_of_step(step: Any) -> Any:
    """The options (``_meta``) of the factory a declaration is being evaluated for, or None.

    A declaration's ``evaluate`` receives factory_boy's BuildStep, which reaches the factory's
    options only through the private ``builder.factory_meta``.
    """
    return getattr(getattr(step, "builder", None), "factory_meta", None)


@dataclass(frozen=True)
class FactoryShape:
    """What a factory class declares, read once per class: declarations, traits, known names."""

    declarations: Mapping[str, Any]
    traits: Mapping[str, Mapping[str, Any]]
    known: frozenset[str]
    post: frozenset[str]
    trait_fields: frozenset[str]
    """Own fields some trait overrides: factory_boy wraps each in a Maybe evaluated per object."""
    params: Mapping[str, Any]
    """Plain ``Params`` (not traits) and their declared values."""
    touched: Mapping[str, frozenset[str]]
    """Per trait, the own fields it overrides (not flags, not fields of places below)."""


@per_class
def shape_of(factory_cls: Any) -> FactoryShape:
    """The declarations, traits (in declaration order) and accepted keyword names of a factory.

    ``_meta.base_declarations`` holds the class-level declarations without trait expansion,
    ``_meta.parameters`` the Params (Traits among them), ``_meta.pre_declarations`` /
    ``post_declarations`` every name factory_boy resolves and ``_meta.rename`` the renames: all
    private to factory_boy's FactoryOptions. ``Trait.overrides`` is private to Trait.
    Factory classes are immutable once defined, so the read is cached per class.
    """
    meta = factory_cls._meta
    params = dict(meta.parameters)
    traits = {
        name: dict(param.overrides) for name, param in params.items() if isinstance(param, Trait)
    }
    declarations = {k: v for k, v in meta.base_declarations.items() if k not in params}
    known = frozenset(
        {
            *meta.pre_declarations,
            *meta.post_declarations,
            *params,
            *meta.rename,
            *meta.exclude,
            "__sequence",
        }
    )
    touched = {
        name: frozenset(k for k in overrides if k not in traits and SPLITTER not in k)
        for name, overrides in traits.items()
    }
    trait_fields = frozenset().union(*touched.values())
    # factory_boy wraps each plain Param in a SimpleParameter holding it as ``value``.
    plain = {n: p.value for n, p in params.items() if n not in traits and hasattr(p, "value")}
    return FactoryShape(
        declarations,
        traits,
        known,
        frozenset(meta.post_declarations),
        trait_fields,
        plain,
        touched,
    )


def decider_name(maybe: Maybe) -> str | None:
    """The own field a ``Maybe`` decides on (``Maybe("fancy", ...)``), else ``None``."""
    decider = maybe.decider
    name = getattr(decider, "attribute_name", None)
    if type(decider) is SelfAttribute and decider.depth <= 1 and name and "." not in name:
        return str(name)
    return None
