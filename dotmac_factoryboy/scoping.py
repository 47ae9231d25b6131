"""Which rows belong to a tenant, and how: tenant references, each model's tenant spec (column,
relationship, tenant model), reading a row's tenant, and the tree's tenant decision as data.

Everything here reads models and rows only; the plan, the decision and the per-object hook build
on it (``plan`` marks places with specs, ``tenancy`` decides and checks).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Column
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper

from .customizations import format_path
from .factory_boy_adapter import per_class
from .relationships import relationship_for_column


@dataclass(frozen=True)
class TenantRef:
    """A tenant, known by id, by (possibly unsaved) instance, or both."""

    id: Any
    instance: Any = None

    def same(self, other: TenantRef) -> bool:
        """True when both refer to the same tenant."""
        if self.id is not None and other.id is not None:
            return bool(self.id == other.id)
        return self.instance is not None and self.instance is other.instance

    def __str__(self) -> str:
        return f"tenant {self.id!r}" if self.id is not None else f"unsaved tenant {self.instance!r}"


def tenant_ref(tenant_or_id: Any) -> TenantRef:
    """Wrap a tenant instance or a tenant id."""
    state = sa_inspect(tenant_or_id, raiseerr=False)
    if state is None or not hasattr(state, "mapper"):
        return TenantRef(tenant_or_id)
    identity = state.identity
    if identity is None:  # not written yet: a key it was built with (a Sequence slug) counts
        columns = state.mapper.primary_key
        keys = [state.mapper.get_property_by_column(c).key for c in columns]
        identity = tuple(state.dict.get(k) for k in keys)
        identity = None if None in identity else identity
    key = identity[0] if identity is not None and len(identity) == 1 else identity
    return TenantRef(key, tenant_or_id)


# -- which models are tenant-scoped ---------------------------------------------------------


@dataclass(frozen=True)
class TenantSpec:
    """How a model points at its tenant: the column, the relationship, the tenant model."""

    field: str
    relationship: str | None
    tenant_model: type[Any] | None
    tenant_factory: Any = None

    def coerce(self, value: Any) -> Any:
        """``value`` as the tenant key's Python type (a str UUID becomes a UUID)."""
        column = _key_column(self.tenant_model)
        return coerce_key(column, value) if column is not None else value


def coerce_key(column: Column[Any], value: Any) -> Any:
    """Coerce an id through a column's Python type, so ``"5"`` and ``5`` compare equal."""
    try:
        python_type = column.type.python_type
    except NotImplementedError:
        return value
    if value is None or isinstance(value, python_type):
        return value
    if python_type is uuid.UUID or (python_type is int and isinstance(value, str)):
        try:
            return python_type(str(value))
        except ValueError:
            return value
    return value


_KEY_COLUMNS: dict[type[Any] | None, Column[Any] | None] = {}


def _key_column(model: type[Any] | None) -> Column[Any] | None:
    """The single-column primary key of ``model`` (cached: read for every row a tree builds)."""
    if model not in _KEY_COLUMNS:
        _KEY_COLUMNS[model] = _read_key_column(model)
    return _KEY_COLUMNS[model]


def _read_key_column(model: type[Any] | None) -> Column[Any] | None:
    mapper = sa_inspect(model, raiseerr=False) if model is not None else None
    if not isinstance(mapper, Mapper) or len(mapper.primary_key) != 1:
        return None
    column: Column[Any] = mapper.primary_key[0]  # type: ignore[assignment]  # mapped PK is a Column
    return column


_TENANT_FACTORIES: dict[type[Any], Any] = {}
"""The first tenant factory (TenantIsolatedFactory subclass) defined for each model."""


def remember_tenant_factory(factory_cls: Any) -> None:
    """Called by TenantIsolatedFactory's metaclass for each concrete subclass."""
    _TENANT_FACTORIES.setdefault(factory_cls._meta.model, factory_cls)


@per_class
def declared_spec(factory_cls: Any) -> TenantSpec | None:
    """The spec a tenant factory's Meta declares, if its model has that column (cached for as
    long as the class lives: pytest-factoryboy's throwaway subclasses must not be kept)."""
    meta = factory_cls._meta
    field = getattr(meta, "tenant_field", None)
    mapper = sa_inspect(getattr(meta, "model", None), raiseerr=False)
    if field is None or not isinstance(mapper, Mapper) or field not in mapper.columns:
        return None
    relation = meta.tenant_relationship or relationship_for_column(meta.model, field)
    tenant_model = None
    if relation is not None and relation != field:
        tenant_model = mapper.relationships[relation].mapper.class_
    elif meta.tenant_factory is not None:
        tenant_model = meta.tenant_factory._meta.model
    else:
        tenant_model = _referenced_model(mapper, field)
    return TenantSpec(field, relation, tenant_model, meta.tenant_factory)


def _referenced_model(mapper: Mapper[Any], field: str) -> type[Any] | None:
    """The mapped class a tenant column's one foreign key points at (no relationship needed)."""
    keys = list(mapper.columns[field].foreign_keys)
    if len(keys) != 1:
        return None
    table = keys[0].column.table
    found = [m.class_ for m in mapper.registry.mappers if m.local_table is table]
    return found[0] if len(found) == 1 else None


_TENANT_MODELS: dict[int, frozenset[type[Any]]] = {}


def tenant_models() -> frozenset[type[Any]]:
    """Models some tenant factory points at as its tenant (cached per factory count)."""
    generation = len(_TENANT_FACTORIES)
    if generation not in _TENANT_MODELS:
        specs = (declared_spec(f) for f in list(_TENANT_FACTORIES.values()))
        _TENANT_MODELS[generation] = frozenset(
            s.tenant_model for s in specs if s is not None and s.tenant_model is not None
        )
    return _TENANT_MODELS[generation]


_SPECS: dict[tuple[type[Any], int], TenantSpec | None] = {}


def spec_for_model(model: type[Any]) -> TenantSpec | None:
    """How rows of ``model`` name their tenant (``None`` for models that are not scoped).

    Cached per model and per number of tenant factories defined so far.
    """
    key = (model, len(_TENANT_FACTORIES))
    if key not in _SPECS:
        _SPECS[key] = _read_spec(model)
    return _SPECS[key]


def _read_spec(model: type[Any]) -> TenantSpec | None:
    """A model's tenant spec: from a tenant factory for it, else its one link to a tenant model."""
    declared = _TENANT_FACTORIES.get(model)
    spec = declared_spec(declared) if declared is not None else None
    if spec is not None:
        return spec
    mapper = sa_inspect(model, raiseerr=False)
    if not isinstance(mapper, Mapper):
        return None
    scoped_by = tenant_models()
    links = [
        r
        for r in mapper.relationships
        if r.direction.name == "MANYTOONE" and r.mapper.class_ in scoped_by
    ]
    if len(links) != 1 or len(links[0].local_columns) != 1:
        return None
    column = next(iter(links[0].local_columns))
    return TenantSpec(str(column.key), str(links[0].key), links[0].mapper.class_)


def spec_for(factory_cls: Any) -> TenantSpec | None:
    """How the rows ``factory_cls`` builds name their tenant (its own Meta first)."""
    return declared_spec(factory_cls) or spec_for_model(factory_cls._meta.model)


def is_tenant_model(model: type[Any]) -> bool:
    """True for a model some tenant-scoped factory points at as its tenant."""
    return model in tenant_models()


def tenant_of(instance: Any) -> TenantRef | None:
    """The tenant a mapped instance belongs to, read through its own model's tenant field."""
    state = sa_inspect(instance, raiseerr=False)
    if state is None or not hasattr(state, "mapper"):
        return None
    spec = spec_for_model(type(instance))
    if spec is None:
        return None
    value = _peek(state, instance, spec.field)
    if value is not None:
        return TenantRef(spec.coerce(value))
    owner = _peek(state, instance, spec.relationship) if spec.relationship else None
    return tenant_ref(owner) if owner is not None else None


def _peek(state: Any, instance: Any, key: str) -> Any:
    """An attribute's value without writing a pending row (a row in the database may load)."""
    if key in state.dict or state.key is None:
        return state.dict.get(key)
    return getattr(instance, key)


def tenant_id_of(instance: Any) -> Any:
    """The tenant id a row belongs to, or its own id for a tenant row; ``None`` if neither."""
    ref = tenant_of(instance)
    if ref is not None:
        return ref.id
    if is_tenant_model(type(instance)):
        return tenant_ref(instance).id
    return None


def injected(spec: TenantSpec, tenant: TenantRef) -> dict[str, Any]:
    """The keywords that make a row belong to ``tenant``: its id, else the (unsaved) instance."""
    if tenant.id is not None:
        return {spec.field: spec.coerce(tenant.id)}
    if spec.relationship is not None and tenant.instance is not None:
        return {spec.relationship: tenant.instance}
    return {}


@dataclass(frozen=True)
class TenantDecision:
    """The tree's tenant: an existing one (``ref``, with where it came from), or a new one built at
    the ``place`` path."""

    ref: TenantRef | None
    origin: str
    place: tuple[str, ...] | None = None

    def __str__(self) -> str:
        if self.ref is None and self.place is not None:
            return f"a new tenant built at {format_path(self.place)!r}"
        return f"{self.ref} (from {self.origin})"
