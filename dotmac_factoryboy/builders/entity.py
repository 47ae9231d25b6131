"""EntityBuilder: one entity, with attributes, generated values, traits and relationships."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from ..errors import RelationshipError
from ..generators import DataType
from ..relationships import RelationshipDefinition
from .shared import SharedTenant, _link, atomic

if TYPE_CHECKING:
    from . import TestDataBuilder


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
