"""A factory_boy-compatible builder that parses a factory's declarations once per call.

factory_boy's ``StepBuilder`` parses a factory's declarations again for every object and resolves
each field through its lazy ``Resolver``. A batch builds the same tree n times, so this builder
parses each (factory, keywords) once (with factory_boy's own ``parse_declarations``) and per
object only evaluates. Constants, ``Sequence``, ``LazyFunction``, context-free ``Faker`` draws and
``SubFactory`` places run as precompiled callables (a declaration class may offer its own
``shortcut(factory_meta)`` draw, as ``dotmac_factoryboy.Faker`` does); every other declaration goes through its own
``evaluate_pre`` / ``evaluate_post`` with a resolver and build step of the shape factory_boy
passes, so custom declarations, ``post_generation``, ``RelatedFactory`` and ``Maybe`` keep
working. Fields resolve in factory_boy's order, so a seed draws the same values.

Everything here mirrors factory_boy 3.3's ``factory.builder`` (``StepBuilder``, ``BuildStep``,
``Resolver``) and uses its private ``_meta.pre_declarations`` / ``post_declarations`` and the
declarations' ``_defaults``: factory_boy has no public hook for building from a parsed plan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import factory
import faker
from factory import enums, errors
from factory.base import BaseFactory, FactoryOptions
from factory.builder import DeclarationWithContext, parse_declarations
from factory.declarations import (
    _UNSPECIFIED,
    SKIP,
    Iterator,
    LazyAttribute,
    LazyAttributeSequence,
    LazyFunction,
    Maybe,
    SelfAttribute,
    Sequence,
    Skip,
    SubFactory,
)

from ..context import shallow_copy
from ..errors import SkippedPlaceError
from . import SPLITTER, declared_key, is_factory, lasting_class, without_values

LOGGER = logging.getLogger("factory.generate")
"""factory_boy's logger: while ``factory.debug()`` enables it, every declaration runs its own
``evaluate`` (which logs) instead of a shortcut."""

Evaluate = Callable[["BuildStep"], Any]
"""A precompiled field: its value for one object, given that object's build step."""


class CompiledFactory:
    """One factory with one set of keywords, parsed once; ``build()`` makes one object.

    It stands where factory_boy's ``StepBuilder`` stands (``step.builder``): declarations read
    ``factory_meta`` and ``strategy`` from it.
    """

    def __init__(self, factory_meta: Any, extras: dict[str, Any], strategy: str) -> None:
        self.factory_meta = factory_meta
        self.strategy = strategy
        extras = dict(extras)
        self.init_sequence = extras.pop("__sequence", None)
        pre, post = parse_declarations(
            extras, base_pre=factory_meta.pre_declarations, base_post=factory_meta.post_declarations
        )
        self.order: list[str] = list(pre)
        self.declarations: dict[str, DeclarationWithContext] = {name: pre[name] for name in pre}
        self.post: list[tuple[str, DeclarationWithContext]] = [(n, post[n]) for n in post.sorted()]
        self.prepare = _preparer(factory_meta)
        self.creates = _creates(factory_meta, strategy)
        self.fast: dict[str, Evaluate] = {}
        self.leaves: set[str] = set()
        """Fast fields that read nothing of the object (constants, draws, sequences): the build
        loop sets them without going through the resolver."""
        debugging = LOGGER.isEnabledFor(logging.DEBUG)  # then every declaration evaluates
        for name, found in ({} if debugging else self.declarations).items():
            declaration = _decided(found.declaration, self.declarations)
            fast = _precompiled(declaration, found.context, self)
            if fast is not None:
                self.fast[name] = fast
                if type(declaration) not in _READS_OBJECT:
                    self.leaves.add(name)
        self.steps = self._steps()

    def _steps(self) -> list[tuple[str, Evaluate | None, bool]]:
        """Per field in order: its precompiled evaluator (None: through the resolver, as is a
        name the resolver has an attribute for) and whether it reads nothing of the object."""
        return [
            (name, None if hasattr(Resolver, name) else self.fast.get(name), name in self.leaves)
            for name in self.order
        ]

    def build(self, parent_step: BuildStep | None = None, force_sequence: int | None = None) -> Any:
        """Build (or create) one object, exactly as ``StepBuilder.build`` does."""
        meta = self.factory_meta
        if force_sequence is not None:
            sequence = force_sequence
        elif self.init_sequence is not None:
            sequence = self.init_sequence
        else:
            sequence = meta.next_sequence()
        step = BuildStep(self, sequence, parent_step)
        attributes = step.attributes
        for name, evaluate, leaf in self.steps:
            values = step.values  # the resolver's, once something has read it
            if values is not None and name in values:  # read before its turn
                value = values[name]
            elif evaluate is None:  # through the resolver, as StepBuilder: a real attribute wins
                value = getattr(step.stub, name)
                value = SKIP if isinstance(value, SkippedPlace) else value
            elif leaf:  # reads nothing of the object
                value = evaluate(step)
                if values is not None:
                    values[name] = value
            else:  # a sub-object reading this field back (``..owner``) is a cycle
                pending = step.pending
                pending.append(name)
                try:
                    value = evaluate(step)
                finally:
                    pending.pop()
                if step.values is not None:
                    step.values[name] = value
            attributes[name] = value
        args, kwargs = self.prepare(attributes)
        if self.creates:  # FactoryOptions.instantiate for the create strategy, one call less
            instance = meta.factory._create(meta.model, *args, **kwargs)
        else:
            instance = meta.instantiate(step=step, args=args, kwargs=kwargs)
        if (
            self.post
            or type(meta).use_postgeneration_results is not _USE_RESULTS
            or getattr(meta.factory._after_postgeneration, "__func__", None)
            is not _AFTER_POSTGENERATION
        ):
            results = {
                name: found.declaration.evaluate_post(
                    instance=instance, step=step, overrides=found.context
                )
                for name, found in self.post
            }
            meta.use_postgeneration_results(instance=instance, step=step, results=results)
        step.resolver = None  # it and the step hold each other: free both without the collector
        return instance

    def bound(self, factory_meta: Any, extras: dict[str, Any]) -> CompiledFactory:
        """This parse for another call of the same shape: its factory's options (an empty
        subclass's own, which pytest-factoryboy edits), sequence and plain values."""
        mine = shallow_copy(self)
        if factory_meta is not self.factory_meta:
            mine.factory_meta = factory_meta
            mine.prepare = _preparer(factory_meta)
            mine.creates = _creates(factory_meta, self.strategy)
        mine.init_sequence = extras.get("__sequence")
        fast = mine.fast = dict(self.fast)
        leaves = mine.leaves = set(self.leaves)
        declarations = mine.declarations = dict(self.declarations)
        changed = False
        for name, value in extras.items():
            if name in fast and enums.get_builder_phase(value) is None:
                fast[name] = _constant(value)
                leaves.add(name)
                declarations[name] = declarations[name]._replace(declaration=value)
                changed = True
        if changed:
            mine.steps = mine._steps()
        return mine

    def __repr__(self) -> str:
        return f"<StepBuilder({self.factory_meta!r}, strategy={self.strategy!r})>"


def _preparer(meta: Any) -> Callable[[dict[str, Any]], tuple[tuple[Any, ...], dict[str, Any]]]:
    """``meta.prepare_arguments``, or for the common factory (no ``_adjust_kwargs`` or
    ``prepare_arguments`` of its own, no ``rename``, no ``inline_args``) the one step of it that
    then does anything: drop excluded names, parameters and SKIP values."""
    if (
        type(meta).prepare_arguments is not FactoryOptions.prepare_arguments
        or getattr(meta.factory._adjust_kwargs, "__func__", None) is not _ADJUST_KWARGS
        or meta.rename
        or meta.inline_args
    ):
        return meta.prepare_arguments  # type: ignore[no-any-return]
    hidden = frozenset((*meta.exclude, *meta.parameters))

    def prepare(attributes: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (), {k: v for k, v in attributes.items() if k not in hidden and v is not SKIP}

    return prepare


_AFTER_POSTGENERATION: Any = vars(BaseFactory)["_after_postgeneration"].__func__
"""factory_boy's own ``_after_postgeneration`` (it does nothing): with no post-generation
declaration either, the build skips that step."""


def _creates(meta: Any, strategy: str) -> bool:
    """Whether instantiating is just ``factory._create(model, ...)``: the create strategy with
    factory_boy's own ``instantiate`` and ``get_model_class``."""
    return (
        strategy == enums.CREATE_STRATEGY
        and type(meta).instantiate is FactoryOptions.instantiate
        and type(meta).get_model_class is FactoryOptions.get_model_class
    )


_USE_RESULTS = FactoryOptions.use_postgeneration_results
_ADJUST_KWARGS: Any = vars(BaseFactory)["_adjust_kwargs"].__func__
"""factory_boy's own ``_adjust_kwargs`` (it returns the keywords unchanged)."""


_READS_OBJECT = (SubFactory, LazyAttribute, LazyAttributeSequence, SelfAttribute)
"""Precompiled declarations that read the object being built (through its resolver, or as a
sub-object's parent): the build loop tracks them for cycles."""


def _constant(value: Any) -> Evaluate:
    return lambda step: value


def compiled(factory_cls: Any, strategy: str, extras: dict[str, Any]) -> CompiledFactory:
    """Parse ``factory_cls`` with ``extras`` for ``strategy`` (a root call's keywords), or bind
    this call's values into the parse of an earlier call of the same shape."""
    # SQLAlchemyModelFactory._generate keeps the root keywords for _get_or_create's retry.
    if hasattr(factory_cls, "_original_params"):
        factory_cls._original_params = extras
    return _parsed(factory_cls, strategy, extras)


def _parsed(factory_cls: Any, strategy: str, extras: dict[str, Any]) -> CompiledFactory:
    key = _shape_of_call(factory_cls, strategy, extras)
    if key is None or (key in _PARSED and _PARSED[key] is None):
        return CompiledFactory(factory_cls._meta, extras, strategy)
    parsed = _PARSED.get(key)
    if parsed is None:
        if len(_PARSED) >= PARSED_LIMIT:
            _PARSED.clear()
        parsed = CompiledFactory(factory_cls._meta, extras, strategy)
        if not _hands_back(parsed, key, extras):
            _PARSED[key] = None  # a declaration took a value in (a Transformer): parse each call
            return parsed
        _PARSED[key] = parsed.bound(lasting_class(factory_cls)._meta, without_values(extras))
    return parsed.bound(factory_cls._meta, extras)


def _hands_back(parsed: CompiledFactory, key: tuple[Any, ...], extras: dict[str, Any]) -> bool:
    """Whether the parse only hands back every value the shape calls constant: a declaration
    that captures the value it is overridden with (``factory.Transformer``) keeps it in its
    context instead, so that value is part of the parse."""
    for name, value in extras.items():
        if (name, _CONSTANT) not in key:
            continue
        found = parsed.declarations.get(name)
        if found is None or found.declaration is not value or name not in parsed.fast:
            return False
    return True


_PARSED: dict[tuple[Any, ...], CompiledFactory | None] = {}
PARSED_LIMIT = 4096
"""Parses kept for reuse; emptied when it grows past this."""
_CONSTANT = object()
"""A keyword whose value the parse only hands back (a plain value or a row at a name resolved
before instantiation): calls differing there share one parse."""
_SAME_WHEN_EQUAL = (type(None), bool, int, str, bytes)
"""Types whose equal values are the same value (not float: 0.0 == -0.0; not Decimal: 1.0 ==
1.00), so an equal value may share a parse that keeps it."""


def _shape_of_call(factory_cls: Any, strategy: str, extras: dict[str, Any]) -> Any:
    """What a parse of these keywords depends on (None: parse this call on its own).

    A value that is not a declaration, at a name resolved before instantiation, is only handed
    back (``_CONSTANT``); a declaration is parsed as itself (by identity); a value below a place
    or for a post-generation name is kept in a context, so only an equal plain value shares it.
    """
    if LOGGER.isEnabledFor(logging.DEBUG):  # every declaration evaluates (and logs) itself
        return None
    post = factory_cls._meta.post_declarations
    shape: list[Any] = [declared_key(factory_cls), strategy]
    for name, value in extras.items():
        if enums.get_builder_phase(value) is not None:
            shape.append((name, value))
        elif SPLITTER not in name and name != "__sequence" and name not in post:
            shape.append((name, _CONSTANT))
        elif type(value) in _SAME_WHEN_EQUAL:
            shape.append((name, type(value), value))
        else:
            return None
    key = tuple(shape)
    try:
        hash(key)
    except TypeError:
        return None
    return key


class BuildStep:
    """factory_boy's ``BuildStep``: one object's sequence, attributes, resolver and parent.

    The resolver is made when something first reads it (a declaration that is not precompiled,
    a sub-object's ``..field``, ``factory_parent``); the fields set before then are its first
    values. An object whose fields read nothing of it never needs one.
    """

    def __init__(
        self, builder: CompiledFactory, sequence: int, parent_step: BuildStep | None
    ) -> None:
        self.builder = builder
        self.sequence = sequence
        self.parent_step = parent_step
        self.attributes: dict[str, Any] = {}
        self.pending: list[str] = []
        """Fields being computed: reading one of them again is a cycle."""
        self.values: dict[str, Any] | None = None
        """The resolver's values, once it exists."""
        self.resolver: Resolver | None = None

    @property
    def stub(self) -> Resolver:
        """The object's resolver (factory_boy's ``step.stub``)."""
        if self.resolver is None:
            self.values = dict(self.attributes)
            self.resolver = Resolver(self.builder, self)
        return self.resolver

    def __repr__(self) -> str:
        return f"<BuildStep for {self.builder!r}>"

    @property
    def chain(self) -> tuple[Resolver, ...]:
        parent = self.parent_step.chain if self.parent_step is not None else ()
        return (self.stub, *parent)

    def recurse(
        self, factory_cls: Any, declarations: dict[str, Any], force_sequence: int | None = None
    ) -> Any:
        """Build a sub-object (a declaration's own recursion: Maybe, RelatedFactory, Dict...)."""
        _check_factory(self, factory_cls)
        builder = _parsed(factory_cls, self.builder.strategy, declarations)
        return builder.build(parent_step=self, force_sequence=force_sequence)


def _check_factory(step: BuildStep, factory_cls: Any) -> None:
    if not is_factory(factory_cls):
        raise errors.AssociatedClassError(
            f"{step!r}: Attempting to recursing into a non-factory object {factory_cls!r}"
        )


class SkippedPlace(Skip):
    """What a declaration reads for a place the call does not build (factory_boy's SKIP: falsy,
    dropped from the model's keywords); reading an attribute of it names the place and the fix
    instead of ``'Skip' object has no attribute``."""

    def __init__(self, factory_name: str, field: str) -> None:
        self.factory_name = factory_name
        self.field = field

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):
            raise AttributeError(attribute)
        where = f"{self.factory_name}.{self.field}"
        raise SkippedPlaceError(
            f"{where} is not built in this call (a place linked by a foreign-key id without a "
            "session to load the row, set to SKIP, or left out by a trait), so "
            f"{self.field}.{attribute} cannot be read. Fix: build it ({self.field}__... keywords "
            f"or customize(Model, path=...)), pass the row itself ({self.field}=row), or read the "
            f"foreign-key column instead (SelfAttribute('{self.field}_id') or similar)."
        )


class Resolver:
    """factory_boy's ``Resolver``: fields computed on first read, cycles refused, read-only.

    Its only public name is ``factory_parent``, as in factory_boy; its own state is mangled
    (``__values``) so no field of a factory can shadow it.
    """

    __builder: CompiledFactory
    __step: BuildStep
    __values: dict[str, Any]
    __pending: list[str]

    def __init__(self, builder: CompiledFactory, step: BuildStep) -> None:
        # Straight into __dict__: __setattr__ refuses every assignment (one dict update per
        # object instead of five refused-then-allowed calls on the hot path).
        vars(self).update(
            _Resolver__builder=builder,
            _Resolver__step=step,
            _Resolver__values=step.values if step.values is not None else {},
            _Resolver__pending=step.pending,
        )

    @property
    def factory_parent(self) -> Resolver | None:
        parent = self.__step.parent_step
        return parent.stub if parent is not None else None

    def __getattr__(self, name: str) -> Any:
        """The value of ``name`` for this object (computed once)."""
        if name.startswith("_Resolver__"):  # not set up yet (copy, pickle): no recursion
            raise AttributeError(name)
        values = self.__values
        if name in values:
            return self.__read(name, values[name])
        pending = self.__pending
        if name in pending:
            raise errors.CyclicDefinitionError(
                f"Cyclic lazy attribute definition for {name!r}; cycle found in {pending!r}."
            )
        fast = self.__builder.fast.get(name)
        found = self.__builder.declarations.get(name)
        if fast is None and found is None:
            raise AttributeError(
                f"The parameter {name!r} is unknown. Evaluated attributes are {values!r}, "
                f"definitions are {list(self.__builder.declarations)!r}."
            )
        pending.append(name)  # a sub-object reading this field back (``..owner``) is a cycle
        try:
            if fast is not None:
                value = fast(self.__step)
            else:
                assert found is not None
                value = found.declaration
                if enums.get_builder_phase(value) == enums.BuilderPhase.ATTRIBUTE_RESOLUTION:
                    value = value.evaluate_pre(
                        instance=self, step=self.__step, overrides=found.context
                    )
        finally:
            pending.pop()
        values[name] = value
        return self.__read(name, value)

    def __read(self, name: str, value: Any) -> Any:
        """A skipped place reads as a falsy Skip that names itself when an attribute is read."""
        if value is SKIP:
            return SkippedPlace(self.__builder.factory_meta.factory.__name__, name)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Setting of object attributes is not allowed")

    def __repr__(self) -> str:
        return f"<Resolver for {self.__step!r}>"


def _decided(declaration: Any, declared: dict[str, Any]) -> Any:
    """The branch a ``Maybe`` always takes in this parse, when its decider reads a field the
    parse does not declare (a trait flag the call leaves unset): ``SelfAttribute`` then finds no
    such field on the resolver and gives its default, for every object. Anything else as is."""
    while type(declaration) is Maybe:
        decider = declaration.decider
        if (
            type(decider) is not SelfAttribute
            or decider.depth > 1
            or "." in decider.attribute_name
            or decider.attribute_name in declared
            or hasattr(Resolver, decider.attribute_name)
            or decider.default is _UNSPECIFIED
        ):
            break
        declaration = declaration.yes if decider.default else declaration.no
    return declaration


def _precompiled(declaration: Any, context: dict[str, Any], builder: CompiledFactory) -> Any:
    """A direct evaluator for the common declarations, or None for the general path."""
    if enums.get_builder_phase(declaration) is None:
        return _constant(declaration)
    if type(declaration) is SubFactory:  # a subclass may evaluate its own way
        return _subfactory(declaration, context, builder.strategy)
    if context:  # a context may hold declarations to unroll: factory_boy's own path does it
        return None
    if type(declaration) is Sequence:
        function = declaration.function
        return lambda step: function(int(step.sequence))
    if type(declaration) is LazyFunction:
        call = declaration.function
        return lambda step: call()
    # What their evaluate_pre does with no context: evaluate(resolver, step, {}).
    evaluate: Any = getattr(declaration, "evaluate", None)
    if type(declaration) is Iterator:  # reads neither the resolver nor the step
        return lambda step: evaluate(None, step, {})
    if type(declaration) is SelfAttribute:
        return lambda step: evaluate(step.stub, step, {})
    if type(declaration) is LazyAttribute:
        function = declaration.function
        return lambda step: function(step.stub)
    if type(declaration) is LazyAttributeSequence:
        function = declaration.function
        return lambda step: function(step.stub, int(step.sequence))
    # A declaration class may offer a direct draw for exactly itself (a subclass does not
    # inherit it: its own evaluate decides); factory.Faker's is here.
    shortcut = type(declaration).__dict__.get("shortcut")
    if shortcut is not None or type(declaration) is factory.Faker:
        draw = shortcut(declaration, builder.factory_meta) if shortcut else faker_draw(declaration)
        return (lambda step: draw()) if draw is not None else None
    return None


def _subfactory(declaration: SubFactory, context: dict[str, Any], strategy: str) -> Evaluate:
    """A SubFactory place: its keywords are parsed on first use, then reused for every object."""
    # SubFactory passes its keyword defaults (private ``_defaults``) and the caller's context
    # to the sub-factory as keywords, unevaluated (UNROLL_CONTEXT_BEFORE_EVALUATION is False).
    extras = {**declaration._defaults, **context}
    parsed: list[CompiledFactory] = []

    def build(step: BuildStep) -> Any:
        if not parsed:
            factory_cls = declaration.get_factory()
            _check_factory(step, factory_cls)
            parsed.append(CompiledFactory(factory_cls._meta, extras, strategy))
        force = step.sequence if declaration.FORCE_SEQUENCE else None
        return parsed[0].build(parent_step=step, force_sequence=force)

    return build


def faker_draw(
    declaration: factory.Faker, formatter: Callable[[str | None, str], Any] | None = None
) -> Callable[[], Any] | None:
    """The bound Faker method a Faker declaration calls, when its arguments are plain values.

    Mirrors ``factory.Faker.evaluate``: ``locale`` picks the Faker, the other defaults are the
    provider's arguments. ``formatter(locale, provider)`` picks the method another way (our
    unweighted draws). A multi-locale Faker picks a locale per draw, and a registry entry that is
    not a real Faker draws through its own ``format()``: both keep the general path.
    """
    arguments = dict(declaration._defaults)
    if any(enums.get_builder_phase(v) is not None for v in arguments.values()):
        return None
    locale = arguments.pop("locale", None)
    if formatter is not None:
        method = formatter(locale, declaration.provider)
    else:
        found = factory.Faker._get_faker(locale)
        if type(found) is not faker.Faker or len(found.locales) != 1:
            return None
        method = getattr(found, declaration.provider)
    if not arguments:
        return method  # type: ignore[no-any-return]
    return lambda: method(**arguments)
