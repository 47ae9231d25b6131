"""Builders: the DotMac fluent API (entities, relationships, scenarios). Every entity is a real row
created through the registered factories, so tenant rules, priorities, tracking and cleanup apply.
"""

from __future__ import annotations

from ..generators import DataGenerator
from ..registry import FactoryRegistry
from ..registry import registry as default_registry
from .entity import EntityBuilder
from .relationship import RelationshipBuilder
from .scenario import RECIPES, ScenarioBuilder, ScenarioContext, ScenarioStep, register_recipe
from .shared import SharedTenant, atomic

__all__ = [
    "RECIPES",
    "EntityBuilder",
    "RelationshipBuilder",
    "ScenarioBuilder",
    "ScenarioContext",
    "ScenarioStep",
    "SharedTenant",
    "TestDataBuilder",
    "atomic",
    "register_recipe",
]


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
