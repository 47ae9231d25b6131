"""ScenarioBuilder: named steps with dependencies and conditions, run all or nothing; recipes."""

from __future__ import annotations

import functools
import graphlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from ..errors import ConfigurationError, ScenarioError
from ..generators import DataGenerator
from ..registry import FactoryRegistry
from ..registry import registry as default_registry
from ..session import bound_session
from .shared import REFERENCE, SharedTenant, _resolve, atomic

Recipe = Callable[..., "ScenarioBuilder"]
RECIPES: dict[str, Recipe] = {}
"""Named scenario recipes: functions ``(builder, **options) -> builder`` that add steps."""


def register_recipe(name: str, recipe: Recipe) -> None:
    """Make ``recipe`` callable as ``ScenarioBuilder.<name>(...)``."""
    RECIPES[name] = recipe


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

    def __getattr__(self, name: str) -> Callable[..., ScenarioBuilder]:
        """Registered recipes read as methods: ``builder.customer_onboarding_scenario(...)``."""
        recipe = RECIPES.get(name)
        if recipe is None or name.startswith("_"):
            raise AttributeError(
                f"ScenarioBuilder has no attribute or recipe {name!r} (recipes: "
                f"{', '.join(sorted(RECIPES)) or 'none'}). The ISP recipes come with "
                "`import dotmac_factoryboy.isp`; add your own with register_recipe()."
            )
        return functools.partial(recipe, self)

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

    def session(self) -> Session:
        """The bound session existing rows are looked up in."""
        session = bound_session(self.registry)
        if session is None:
            raise ConfigurationError(
                f"Scenario {self.name!r} looks up existing rows and needs a session. Fix: "
                "registry.bind(session) or `with registry.bound(session):`."
            )
        return session

    def find(self, factory_name: str, key: Any) -> Any:
        """The existing row of ``factory_name``'s model with primary key ``key``."""
        model = self.registry.get_factory(factory_name)._meta.model
        found = self.session().get(model, key)
        if found is None:
            raise ScenarioError(f"Scenario {self.name!r}: no {model.__name__} with id {key!r}.")
        return found
