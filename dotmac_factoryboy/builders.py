"""Builders: the DotMac fluent API (entities, relationships, scenarios). Every entity is a real row
created through the registered factories, so tenant rules, priorities, tracking and cleanup apply.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select
from sqlalchemy.orm import Session

from .customizations import LinkOnly
from .errors import ConfigurationError, RelationshipError, ScenarioError
from .generators import DataGenerator, DataType
from .registry import FactoryRegistry, TrackingScope
from .registry import registry as default_registry
from .relationships import (
    RelationshipDefinition,
    check_definition_shape,
    relationship_for_column,
)
from .session import bound_session, row_session
from .tenancy import current_tenant_id, tenant_context, tenant_id_of

REFERENCE = re.compile(r"\$\{([A-Za-z_]\w*)((?:\.\w+)*)\}")
"""``${step}`` or ``${step.attr.attr}`` inside a scenario step's attributes."""


# -- shared plumbing ------------------------------------------------------------------------


class SharedTenant:
    """Keeps one builder call in one tenant: the first tenant seen becomes the context of the rest
    (an already active ``tenant_context`` wins)."""

    def __init__(self, registry: FactoryRegistry) -> None:
        self.registry = registry
        self._stack = ExitStack()
        self._fixed = current_tenant_id() is not None

    def __enter__(self) -> SharedTenant:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def adopt(self, instance: Any) -> None:
        """Make ``instance``'s tenant the default for what follows, if none is set yet."""
        if self._fixed:
            return
        tenant_id = tenant_id_of(instance)
        if tenant_id is not None:
            self._stack.enter_context(tenant_context(tenant_id))
            self._fixed = True


@contextmanager
def atomic(registry: FactoryRegistry) -> Iterator[TrackingScope]:
    """Track a builder call in its own scope; on failure undo everything it created.

    With a bound session the call runs in a SAVEPOINT that is rolled back; otherwise the rows the
    scope tracked are deleted by the registry's cleanup.
    """
    session = bound_session(registry)
    with registry.scope() as scope:
        if session is None:
            try:
                yield scope
            except BaseException:
                registry.cleanup_all()
                raise
            return
        try:
            with session.begin_nested():
                yield scope
        except BaseException:
            registry.forget(scope)
            raise


def _link(
    registry: FactoryRegistry,
    definition: RelationshipDefinition,
    parent: Any,
    create: bool,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Make one target of ``definition`` that points at ``parent``."""
    target_factory = registry.get_factory(definition.target_factory)
    make = target_factory.create if create else target_factory.build
    if definition.relationship_type == "many_to_many":
        target = make(**(attributes or {}))
        getattr(parent, definition.foreign_key).append(target)
        if create:
            _session_of(registry, parent).flush()
        return target
    key = relationship_for_column(target_factory._meta.model, definition.foreign_key)
    link = {key: LinkOnly(parent)} if key else {definition.foreign_key: parent.id}
    return make(**{**(attributes or {}), **link})


def _session_of(registry: FactoryRegistry, instance: Any) -> Session:
    session = row_session(instance, registry)
    if session is None:
        raise ConfigurationError(
            f"No session holds {instance!r}. Fix: bind one with registry.bound(session)."
        )
    return session


# -- entities -------------------------------------------------------------------------------


class EntityBuilder:
    """Fluent construction of one entity through a registered factory."""

    def __init__(self, builder: TestDataBuilder, factory_name: str) -> None:
        self._builder = builder
        self._name = factory_name
        self._factory = builder.registry.get_factory(factory_name)
        self._attributes: dict[str, Any] = {}
        self._generated: list[tuple[str, DataType, dict[str, Any]]] = []
        self._traits: list[str] = []
        self._relationships: list[RelationshipDefinition] = []

    def with_attribute(self, name: str, value: Any) -> EntityBuilder:
        """Set a field (a caller override: beats traits and defaults)."""
        self._attributes[name] = value
        return self

    def with_generated_attribute(
        self, name: str, data_type: DataType, **options: Any
    ) -> EntityBuilder:
        """Set a field to a value the builder's DataGenerator makes at build time."""
        self._generated.append((name, data_type, options))
        return self

    def with_trait(self, name: str) -> EntityBuilder:
        """Enable a trait; traits enabled earlier win over later ones."""
        self._traits.append(name)
        return self

    def with_relationship(self, relationship_name: str) -> EntityBuilder:
        """Also make one target of a registered relationship whose source is this factory."""
        definition = self._builder.registry.get_relationship(relationship_name)
        if definition.source_factory != self._name:
            raise RelationshipError(
                f"Relationship {relationship_name!r} starts at {definition.source_factory!r}, not "
                f"{self._name!r}. Fix: call with_relationship on an entity of "
                f"{definition.source_factory!r}."
            )
        self._relationships.append(definition)
        return self

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = dict.fromkeys(self._traits, True)
        generator = self._builder.generator
        kwargs.update({n: generator.generate(t, **o) for n, t, o in self._generated})
        kwargs.update(self._attributes)
        return kwargs

    def build(self) -> Any:
        """Create the entity (and its relationship targets) and return it."""
        return self._make(create=True)

    def build_only(self) -> Any:
        """Build without writing anything."""
        return self._make(create=False)

    def _make(self, create: bool) -> Any:
        registry = self._builder.registry
        make = self._factory.create if create else self._factory.build
        with ExitStack() as stack:
            if create:
                stack.enter_context(atomic(registry))
            instance = make(**self._kwargs())
            with SharedTenant(registry) as shared:
                shared.adopt(instance)
                for definition in self._relationships:
                    _link(registry, definition, instance, create)
        return instance


# -- relationships --------------------------------------------------------------------------


class RelationshipBuilder:
    """Chains relationship shapes (and scenario steps) and builds them in one tenant."""

    def __init__(self, builder: TestDataBuilder) -> None:
        self._builder = builder
        self._shapes: list[Callable[[dict[str, Any], SharedTenant], None]] = []
        self._steps = ScenarioBuilder("relationships", builder.registry, builder.generator)

    def _definition(
        self, name: str, source: str, target: str, kind: str, foreign_key: str
    ) -> RelationshipDefinition:
        definition = RelationshipDefinition(name, source, target, kind, foreign_key)  # type: ignore[arg-type]
        for factory_name in (source, target):
            self._builder.registry.get_factory(factory_name)  # FactoryNotFoundError names it
        check_definition_shape(definition, self._builder.registry)
        return definition

    def one_to_many(
        self,
        parent_factory: str,
        child_factory: str,
        name: str,
        foreign_key: str,
        children_count: int = 1,
    ) -> RelationshipBuilder:
        """One parent and ``children_count`` children pointing at it."""
        definition = self._definition(
            name, parent_factory, child_factory, "one_to_many", foreign_key
        )

        def shape(result: dict[str, Any], shared: SharedTenant) -> None:
            parent = self._builder.registry.get_factory(parent_factory).create()
            shared.adopt(parent)
            result[f"parent_{name}"] = parent
            for index in range(children_count):
                child = _link(self._builder.registry, definition, parent, create=True)
                result[f"child_{name}_{index}"] = child

        self._shapes.append(shape)
        return self

    def one_to_one(
        self, source: str, target: str, name: str, foreign_key: str
    ) -> RelationshipBuilder:
        """One source and one target pointing at it."""
        definition = self._definition(name, source, target, "one_to_one", foreign_key)

        def shape(result: dict[str, Any], shared: SharedTenant) -> None:
            made = self._builder.registry.get_factory(source).create()
            shared.adopt(made)
            result[f"source_{name}"] = made
            result[f"target_{name}"] = _link(self._builder.registry, definition, made, create=True)

        self._shapes.append(shape)
        return self

    def many_to_many(
        self,
        left: str,
        right: str,
        name: str,
        left_count: int = 1,
        right_count: int = 1,
        foreign_key: str | None = None,
    ) -> RelationshipBuilder:
        """``left_count`` x ``right_count`` entities, every left linked to every right."""
        registry = self._builder.registry
        left_model = registry.get_factory(left)._meta.model
        right_model = registry.get_factory(right)._meta.model
        collection = foreign_key or next(
            (
                rel.key
                for rel in sa_inspect(left_model).relationships
                if rel.secondary is not None and rel.mapper.class_ is right_model
            ),
            None,
        )
        if collection is None:
            raise RelationshipError(
                f"Relationship {name!r}: {left_model.__name__} has no many-to-many relationship to "
                f"{right_model.__name__}. Fix: map one with secondary=, or pass foreign_key=."
            )
        self._definition(name, left, right, "many_to_many", collection)

        def shape(result: dict[str, Any], shared: SharedTenant) -> None:
            lefts = []
            for index in range(left_count):
                lefts.append(registry.get_factory(left).create())
                shared.adopt(lefts[-1])
                result[f"left_{name}_{index}"] = lefts[-1]
            rights = registry.get_factory(right).create_batch(right_count)
            for index, item in enumerate(rights):
                result[f"right_{name}_{index}"] = item
            for item in lefts:
                getattr(item, collection).extend(rights)
            if lefts:
                _session_of(registry, lefts[0]).flush()

        self._shapes.append(shape)
        return self

    def add_step(self, name: str, factory_name: str, **options: Any) -> RelationshipBuilder:
        """A scenario step, exactly as ``ScenarioBuilder.add_step``."""
        self._steps.add_step(name, factory_name, **options)
        return self

    def build(self) -> dict[str, Any]:
        """Create everything; keys as in the DotMac API, plus one per step name."""
        result: dict[str, Any] = {}
        with atomic(self._builder.registry), SharedTenant(self._builder.registry) as shared:
            for shape in self._shapes:
                shape(result, shared)
            if self._steps.steps:
                result.update(self._steps.run(shared).entities)
        return result


# -- scenarios ------------------------------------------------------------------------------


@dataclass
class ScenarioStep:
    """One named creation in a scenario."""

    name: str
    factory_name: str
    attributes: dict[str, Any]
    traits: tuple[str, ...]
    dependencies: tuple[str, ...]
    condition: Callable[[], bool] | None
    existing: Callable[[], Any] | None = None

    def references(self) -> set[str]:
        """Step names used in ``${...}`` references."""
        found: set[str] = set()

        def scan(value: Any) -> None:
            if isinstance(value, str):
                found.update(m.group(1) for m in REFERENCE.finditer(value))
            elif isinstance(value, Mapping):
                for item in value.values():
                    scan(item)
            elif isinstance(value, (list, tuple, set)):
                for item in value:
                    scan(item)

        scan(self.attributes)
        return found


@dataclass
class ScenarioContext:
    """What a scenario built: entities by step name and the steps it skipped."""

    name: str
    description: str
    entities: dict[str, Any]
    skipped: list[str]
    registry: FactoryRegistry = field(repr=False)
    created: list[Any] = field(default_factory=list, repr=False)

    def cleanup(self) -> None:
        """Delete every row the scenario created (children first)."""
        self.registry.cleanup_instances(self.created)
        self.created = []


class ScenarioBuilder:
    """Named steps with dependencies and conditions, run in dependency order."""

    def __init__(
        self,
        name: str,
        registry: FactoryRegistry | None = None,
        generator: DataGenerator | None = None,
    ) -> None:
        self.name = name
        self.registry = registry if registry is not None else default_registry
        self.generator = generator if generator is not None else DataGenerator()
        self.description = ""
        self.steps: dict[str, ScenarioStep] = {}

    def describe(self, description: str) -> ScenarioBuilder:
        """Attach a description."""
        self.description = description
        return self

    def add_step(
        self,
        name: str,
        factory_name: str,
        attributes: Mapping[str, Any] | None = None,
        traits: Sequence[str] = (),
        dependencies: Sequence[str] = (),
        condition: Callable[[], bool] | None = None,
    ) -> ScenarioBuilder:
        """Add a step; attributes may reference earlier steps as ``${step}`` or ``${step.attr}``."""
        if name in self.steps:
            raise ScenarioError(f"Scenario {self.name!r}: step {name!r} is defined twice.")
        self.steps[name] = ScenarioStep(
            name,
            factory_name,
            dict(attributes or {}),
            tuple(traits),
            tuple(dependencies),
            condition,
        )
        return self

    # -- pre-built ISP scenarios ----------------------------------------------------------

    def customer_onboarding_scenario(
        self, tenant_id: Any = None, service_type: str = "internet"
    ) -> ScenarioBuilder:
        """Tenant (created unless given), customer, service, billing account, first invoice and
        a router linked to the service."""
        _ensure_isp(self.registry)
        self.add_step("tenant", "tenant_factory", _tenant_attributes(tenant_id))
        if tenant_id is not None:
            self.steps["tenant"].existing = lambda: self._find_tenant(tenant_id)
        self.add_step("customer", "customer_factory", {"tenant": "${tenant}"})
        self.add_step("router", "device_factory", {"customer": "${customer}"}, traits=("router",))
        self.add_step(
            "service",
            "service_factory",
            {"customer": "${customer}", "service_type": service_type, "devices": ["${router}"]},
            traits=_service_traits(service_type),
        )
        self.add_step("billing_account", "billing_account_factory", {"customer": "${customer}"})
        self.add_step(
            "invoice",
            "invoice_factory",
            {"billing_account": "${billing_account}", "amount": "${service.monthly_price}"},
        )
        return self

    def service_provisioning_scenario(
        self, customer_id: Any, service_type: str = "fiber_internet"
    ) -> ScenarioBuilder:
        """For an existing customer: a service, ONT and router devices, an activation ticket."""
        _ensure_isp(self.registry)
        self.add_step("customer", "customer_factory")
        self.steps["customer"].existing = lambda: self._find("customer_factory", customer_id)
        self.add_step("ont", "device_factory", {"customer": "${customer}"}, traits=("ont",))
        self.add_step("router", "device_factory", {"customer": "${customer}"}, traits=("router",))
        self.add_step(
            "service",
            "service_factory",
            {
                "customer": "${customer}",
                "service_type": service_type,
                "devices": ["${ont}", "${router}"],
            },
            traits=_service_traits(service_type),
        )
        self.add_step(
            "activation_ticket",
            "ticket_factory",
            {
                "customer": "${customer}",
                "subject": "Activate ${service.service_id}",
                "description": "Provision ${service.plan} for ${customer.name}.",
            },
        )
        return self

    def support_ticket_scenario(self) -> ScenarioBuilder:
        """A customer, a technician, a ticket assigned to them and a child ticket."""
        _ensure_isp(self.registry)
        self.add_step("customer", "customer_factory")
        self.add_step("technician", "user_factory", traits=("technician",))
        ticket = {"customer": "${customer}", "assigned_to": "${technician}"}
        self.add_step("ticket", "ticket_factory", ticket)
        self.add_step("child_ticket", "ticket_factory", {**ticket, "parent": "${ticket}"})
        return self

    # -- running --------------------------------------------------------------------------

    def build(self) -> ScenarioContext:
        """Run every step in dependency order; a failure undoes the whole scenario."""
        with SharedTenant(self.registry) as shared:
            return self.run(shared)

    def run(self, shared: SharedTenant) -> ScenarioContext:
        """Run the steps inside an existing shared-tenant context."""
        order = self._order()
        entities: dict[str, Any] = {}
        skipped: list[str] = []
        with atomic(self.registry) as scope:
            for step in order:
                needs = set(step.dependencies) | step.references()
                if needs & set(skipped) or (step.condition is not None and not step.condition()):
                    skipped.append(step.name)
                    continue
                entities[step.name] = self._run_step(step, entities)
                shared.adopt(entities[step.name])
            created = [row.instance for row in scope.rows]
        return ScenarioContext(
            self.name, self.description, entities, skipped, self.registry, created
        )

    def _run_step(self, step: ScenarioStep, entities: dict[str, Any]) -> Any:
        try:
            found = step.existing() if step.existing is not None else None
            if found is not None:
                return found
            kwargs: dict[str, Any] = dict.fromkeys(step.traits, True)
            kwargs.update(_resolve(step.attributes, entities))
            return self.registry.get_factory(step.factory_name).create(**kwargs)
        except Exception as exc:
            raise ScenarioError(
                f"Scenario {self.name!r}: step {step.name!r} ({step.factory_name}) failed: "
                f"{type(exc).__name__}: {exc}. Everything the scenario created was rolled back."
            ) from exc

    def _order(self) -> list[ScenarioStep]:
        """Steps in dependency order (ties keep insertion order); checks names and cycles."""
        position = {name: index for index, name in enumerate(self.steps)}
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for step in self.steps.values():
            if step.factory_name not in self.registry.factories:
                self._unknown_factory(step)
            needs = set(step.dependencies) | step.references()
            unknown = sorted(needs - set(self.steps))
            if unknown:
                raise ScenarioError(
                    f"Scenario {self.name!r}: step {step.name!r} depends on unknown step(s) "
                    f"{', '.join(unknown)} (steps: {', '.join(self.steps)}). Fix: add them first."
                )
            sorter.add(step.name, *needs)
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise ScenarioError(
                f"Scenario {self.name!r}: steps form a cycle: {cycle}. Fix: drop one dependency."
            ) from None
        ordered: list[ScenarioStep] = []
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            ordered.extend(self.steps[name] for name in ready)
            sorter.done(*ready)
        return ordered

    def _unknown_factory(self, step: ScenarioStep) -> None:
        raise ScenarioError(
            f"Scenario {self.name!r}: step {step.name!r} uses unknown factory "
            f"{step.factory_name!r} (registered: {', '.join(self.registry.names())})."
        )

    def _session(self) -> Session:
        session = bound_session(self.registry)
        if session is None:
            raise ConfigurationError(
                f"Scenario {self.name!r} looks up existing rows and needs a session. Fix: "
                "registry.bind(session) or `with registry.bound(session):`."
            )
        return session

    def _find(self, factory_name: str, key: Any) -> Any:
        model = self.registry.get_factory(factory_name)._meta.model
        found = self._session().get(model, key)
        if found is None:
            raise ScenarioError(f"Scenario {self.name!r}: no {model.__name__} with id {key!r}.")
        return found

    def _find_tenant(self, tenant_id: Any) -> Any:
        if isinstance(tenant_id, int) or str(tenant_id).isdigit():
            return self._find("tenant_factory", int(tenant_id))
        model = self.registry.get_factory("tenant_factory")._meta.model
        query = select(model).where(model.subdomain == str(tenant_id))
        return self._session().execute(query).scalars().first()


def _tenant_attributes(tenant_id: Any) -> dict[str, Any]:
    """A tenant given by a non-numeric id (``"acme-isp"``) is looked up or made by subdomain."""
    if tenant_id is None or isinstance(tenant_id, int) or str(tenant_id).isdigit():
        return {}
    return {"subdomain": str(tenant_id), "name": str(tenant_id).replace("-", " ").title()}


def _service_traits(service_type: str) -> tuple[str, ...]:
    traits = {"fiber_internet": "fiber", "phone": "phone", "tv": "tv"}
    return (traits[service_type],) if service_type in traits else ()


def _ensure_isp(registry: FactoryRegistry) -> None:
    """The pre-built scenarios use the ISP factories: make sure they are registered."""
    if registry is default_registry:
        from .isp import factories  # noqa: F401  (registers the ISP factories)


def _resolve(value: Any, entities: Mapping[str, Any]) -> Any:
    """Replace ``${step}`` / ``${step.attr}`` references with entities or their attributes."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return _lookup(entities, whole.group(1), whole.group(2))
        return REFERENCE.sub(lambda m: str(_lookup(entities, m.group(1), m.group(2))), value)
    if isinstance(value, Mapping):
        return {k: _resolve(v, entities) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, entities) for v in value)
    return value


def _lookup(entities: Mapping[str, Any], name: str, attributes: str) -> Any:
    value = entities[name]
    for attribute in filter(None, attributes.split(".")):
        value = getattr(value, attribute)
    return value


# -- facade ---------------------------------------------------------------------------------


class TestDataBuilder:
    """Entry point of the fluent API: entities, relationships and scenarios."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(
        self, registry: FactoryRegistry | None = None, generator: DataGenerator | None = None
    ) -> None:
        self.registry = registry if registry is not None else default_registry
        self.generator = generator if generator is not None else DataGenerator()

    def entity(self, factory_name: str) -> EntityBuilder:
        """Build one entity through the factory registered as ``factory_name``."""
        return EntityBuilder(self, factory_name)

    def relationship(self) -> RelationshipBuilder:
        """Build related entities."""
        return RelationshipBuilder(self)

    def scenario(self, name: str) -> ScenarioBuilder:
        """Build a named scenario."""
        return ScenarioBuilder(name, self.registry, self.generator)
