"""Relationship definitions: named links between registered factories, checked on registration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import inspect as sa_inspect

from .errors import RelationshipError

if TYPE_CHECKING:
    from .registry import FactoryRegistry

RelationshipType = Literal["one_to_one", "one_to_many", "many_to_many"]
RELATIONSHIP_TYPES: tuple[str, ...] = ("one_to_one", "one_to_many", "many_to_many")


@dataclass(frozen=True)
class RelationshipDefinition:
    """``source_factory`` relates to ``target_factory`` through ``foreign_key``.

    For one-to-one and one-to-many the foreign key (a column or a many-to-one relationship) lives
    on the target model, as ``Service.customer_id`` does; for many-to-many it names the collection
    relationship on the source model (``Service.devices``).
    """

    name: str
    source_factory: str
    target_factory: str
    relationship_type: RelationshipType
    foreign_key: str
    back_reference: str | None = None


def validate_definition(definition: RelationshipDefinition, registry: FactoryRegistry) -> None:
    """Raise ``RelationshipError`` unless the definition is new and fits the factories."""
    if definition.name in registry.relationships:
        raise RelationshipError(
            f"Relationship {definition.name!r} is already registered. Fix: choose another name."
        )
    check_definition_shape(definition, registry)


def check_definition_shape(definition: RelationshipDefinition, registry: FactoryRegistry) -> None:
    """Raise ``RelationshipError`` unless type, factories and foreign key fit the registry."""
    label = f"Relationship {definition.name!r}"
    if definition.relationship_type not in RELATIONSHIP_TYPES:
        raise RelationshipError(
            f"{label}: relationship_type {definition.relationship_type!r} is not one of "
            f"{', '.join(RELATIONSHIP_TYPES)}."
        )
    names = registry.names()
    for role in ("source_factory", "target_factory"):
        wanted = getattr(definition, role)
        if wanted not in registry.factories:
            raise RelationshipError(
                f"{label}: {role} {wanted!r} is not registered (registered: {', '.join(names)}). "
                "Fix: define or register that factory first."
            )
    source = registry.get_factory(definition.source_factory)._meta.model
    target = registry.get_factory(definition.target_factory)._meta.model
    owner = source if definition.relationship_type == "many_to_many" else target
    if definition.foreign_key not in sa_inspect(owner).attrs:
        raise RelationshipError(
            f"{label}: foreign_key {definition.foreign_key!r} is not a column or relationship of "
            f"{owner.__name__}, where a {definition.relationship_type} key must live. Fix: use one "
            f"of {', '.join(sorted(sa_inspect(owner).attrs.keys()))}."
        )


_MANY_TO_ONE: dict[tuple[type[Any], str], str | None] = {}


def relationship_for_column(model: type[Any], key: str) -> str | None:
    """The relationship of ``model`` named ``key``, or the many-to-one one whose local column is
    ``key`` (cached per model and key)."""
    if (model, key) not in _MANY_TO_ONE:
        mapper = sa_inspect(model)
        column = mapper.columns.get(key)
        found = [key] if key in mapper.relationships else []
        found += [
            str(rel.key)
            for rel in mapper.relationships
            if rel.direction.name == "MANYTOONE"
            and column is not None
            and column in rel.local_columns
        ]
        _MANY_TO_ONE[(model, key)] = found[0] if found else None
    return _MANY_TO_ONE[(model, key)]
