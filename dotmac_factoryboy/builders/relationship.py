"""RelationshipBuilder: related entities through registered relationship definitions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import inspect as sa_inspect

from ..errors import RelationshipError
from ..registry import check_definition_shape
from ..relationships import RelationshipDefinition
from .scenario import ScenarioBuilder
from .shared import SharedTenant, _link, _session_of, atomic

if TYPE_CHECKING:
    from . import TestDataBuilder


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
