"""Relationship definitions (named links between registered factories, checked by the registry
that registers them) and the relationship a foreign-key column belongs to."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import inspect as sa_inspect

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


def identity_by_keys(
    model: type[Any], relation: str, given: Mapping[str, Any]
) -> tuple[type[Any], tuple[Any, ...]] | None:
    """For a many-to-one ``relation`` of ``model``, the target class and the identity (in the
    target's primary-key order) that the foreign-key values in ``given`` point at; ``None`` when
    a column of the key is not given (or null), or the key is not the target's primary key."""
    mapper = sa_inspect(model)
    prop = mapper.relationships[relation]
    remote_to_local = {remote: local for local, remote in prop.local_remote_pairs}
    identity = []
    for column in prop.mapper.primary_key:
        local = remote_to_local.get(column)
        if local is None:
            return None
        value = given.get(mapper.get_property_by_column(local).key)
        if value is None:
            return None
        identity.append(value)
    return prop.mapper.class_, tuple(identity)


def load_row(session: Any, model: type[Any], identity: tuple[Any, ...]) -> Any:
    """The row of ``model`` with primary key ``identity``, or ``None``: one SELECT (an
    identity-map hit when the session holds it), never a write (no autoflush)."""
    with session.no_autoflush:
        return session.get(model, identity if len(identity) > 1 else identity[0])


def key_attributes(model: type[Any], relation: str) -> list[str]:
    """The attribute names of a relationship's local foreign-key columns."""
    mapper = sa_inspect(model)
    prop = mapper.relationships[relation]
    return [mapper.get_property_by_column(c).key for c in prop.local_columns]
