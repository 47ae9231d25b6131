"""Tenant-correct build trees: one tenant decision per call, made from the plan, for every root.

Hard sources decide first (tenant keywords at any depth, linked or passed-in rows, foreign-key
ids, read through each row's own model's tenant field); then the ambient order: the factory-level
default, the enclosing build, ``tenant_context``, and finally one new tenant for the whole tree,
built at the plan's tenant place. The per-object hook only injects that tenant and checks values
computed during the build.
"""

from __future__ import annotations

import functools
import inspect as pyinspect
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from factory import enums
from factory.declarations import SKIP
from sqlalchemy import Column
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper

from .context import set_for_block
from .customizations import format_path
from .errors import ConfigurationError, TenantContextError, TenantIsolationError
from .factory_boy_adapter import is_declaration, targets_of
from .relationships import relationship_for_column
from .session import find_session

if TYPE_CHECKING:
    from .plan import CallPlan, PlanNode

F = TypeVar("F", bound=Callable[..., Any])


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


_DECLARED: dict[Any, TenantSpec | None] = {}


def declared_spec(factory_cls: Any) -> TenantSpec | None:
    """The spec a tenant factory's Meta declares, if its model has that column (cached)."""
    if factory_cls not in _DECLARED:
        _DECLARED[factory_cls] = _read_declared_spec(factory_cls)
    return _DECLARED[factory_cls]


def _read_declared_spec(factory_cls: Any) -> TenantSpec | None:
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


def _tenant_models() -> frozenset[type[Any]]:
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
    tenant_models = _tenant_models()
    links = [
        r
        for r in mapper.relationships
        if r.direction.name == "MANYTOONE" and r.mapper.class_ in tenant_models
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
    return model in _tenant_models()


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


# -- the ambient tenant -------------------------------------------------------------------------

_CONTEXT: ContextVar[TenantRef | None] = ContextVar("dotmac_tenant_context", default=None)
_CROSS: ContextVar[bool] = ContextVar("dotmac_allow_cross_tenant", default=False)


def validated_tenant(tenant_or_id: Any, where: str) -> TenantRef:
    """Refuse ``None`` and rows that are not tenants when a tenant is named."""
    if tenant_or_id is None:
        raise TenantContextError(
            f"{where} got None. Fix: pass a tenant instance or a tenant id (to build without a "
            "tenant, leave the context out)."
        )
    if isinstance(tenant_or_id, bool):
        raise TenantContextError(f"{where} got {tenant_or_id!r}. Fix: pass a tenant or its id.")
    state = sa_inspect(tenant_or_id, raiseerr=False)
    if state is not None and hasattr(state, "mapper") and not is_tenant_model(state.class_):
        known = ", ".join(sorted(m.__name__ for m in _tenant_models())) or "none defined yet"
        raise TenantContextError(
            f"{where} got a {type(tenant_or_id).__name__} row, which is not a tenant model "
            f"(tenant models: {known}). Fix: pass the tenant itself, or its id."
        )
    return tenant_ref(tenant_or_id)


class tenant_context:
    """Make a tenant the default for everything built inside (nests; per thread and task)."""

    def __init__(self, tenant_or_id: Any) -> None:
        self.tenant = validated_tenant(tenant_or_id, "tenant_context()")
        self._tokens: list[Token[TenantRef | None]] = []

    def __enter__(self) -> TenantRef:
        self._tokens.append(_CONTEXT.set(self.tenant))
        return self.tenant

    def __exit__(self, *exc: object) -> None:
        _CONTEXT.reset(self._tokens.pop())

    def __call__(self, func: F) -> F:
        """Use as a decorator: each call runs inside its own fresh context."""
        tenant = self.tenant

        if pyinspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with tenant_context(tenant.instance if tenant.instance is not None else tenant.id):
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run(*args: Any, **kwargs: Any) -> Any:
            with tenant_context(tenant.instance if tenant.instance is not None else tenant.id):
                return func(*args, **kwargs)

        return run  # type: ignore[return-value]


def current_tenant_id() -> Any:
    """The id of the innermost active ``tenant_context``, or ``None``."""
    ref = _CONTEXT.get()
    return None if ref is None else ref.id


def allow_cross_tenant() -> AbstractContextManager[None]:
    """Disable the cross-tenant guard, to build invalid data on purpose."""
    return set_for_block(_CROSS, True)


# -- the plan's tenant places -----------------------------------------------------------------


def place_tenant(plan: CallPlan, root: PlanNode) -> None:
    """Mark each node's tenant spec, pin tenant places to the tree's tenant, add the tenant place.

    The tenant place sits at the tenant relationship (else the tenant column) of the shallowest
    tenant-scoped place; every other place that would build a tenant for a scoped row is pinned
    to the tree's tenant.
    """
    queue, scoped = [root], []
    while queue:
        node = queue.pop(0)
        node.tenant = spec_for(node.factory)
        if node.tenant is not None:
            scoped.append(node)
        queue.extend(node.children.values())
    if not scoped:
        return
    for node in scoped:
        relation = node.tenant.relationship if node.tenant is not None else None
        child = node.children.get(relation or "")
        if child is not None:
            _pin(child)
    first = scoped[0]
    spec = first.tenant
    assert spec is not None
    # At the relationship when the model has one, else at the tenant column itself (a bare
    # ForeignKey): either way the new tenant's key lands in that column.
    name = spec.relationship or (spec.field if spec.tenant_model is not None else None)
    if name is None:
        return
    if name in first.children:
        first.children[name].role = "tenant"
        return
    given = first.fields.get(name)
    if given is not None and given.source != "default":
        return
    maker = _tenant_factory(first.factory, spec)
    if maker is not None:
        plan.add_place(first, name, maker, "tenant")


def _pin(node: PlanNode) -> None:
    node.role = "pinned"
    for child in node.children.values():
        _pin(child)


def _tenant_factory(factory_cls: Any, spec: TenantSpec) -> Any:
    if spec.tenant_factory is not None:
        return spec.tenant_factory
    if spec.tenant_model is None:
        return None
    from .registry import registry as default_registry

    chosen = getattr(factory_cls._meta, "registry", None) or default_registry
    try:
        return chosen.factory_for(spec.tenant_model)
    except LookupError:
        return None


def tenant_keywords(node: PlanNode, tenant: TenantRef) -> dict[str, Any]:
    """What the plan adds so the row at ``node`` belongs to ``tenant`` (nothing if it is set)."""
    spec = node.tenant
    assert spec is not None
    field = node.fields.get(spec.field)
    if field is not None and not (field.source == "default" and field.value is None):
        return {}
    relation = spec.relationship
    child = node.children.get(relation or "")
    if relation is not None and child is None:
        given = node.fields.get(relation)
        free = given is None or given.source == "default"
        if not free or (
            given is not None and given.value is not None and not targets_of(given.value)
        ):
            return {}
    out = _injected(spec, tenant)
    if spec.field in out and relation is not None and relation in node.fields:
        out[relation] = SKIP  # the declared place would build a tenant of its own
    return out


def _injected(spec: TenantSpec, tenant: TenantRef) -> dict[str, Any]:
    """The keywords that make a row belong to ``tenant``: its id, else the (unsaved) instance."""
    if tenant.id is not None:
        return {spec.field: spec.coerce(tenant.id)}
    if spec.relationship is not None and tenant.instance is not None:
        return {spec.relationship: tenant.instance}
    return {}


# -- the decision -------------------------------------------------------------------------------


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


def _refuse_other_model(factory_cls: Any, spec: TenantSpec, ref: TenantRef, origin: str) -> None:
    """An ambient tenant row of another tenant model (an Organization for a Workspace-scoped
    factory) must not lend its id to this tree."""
    model = spec.tenant_model
    if ref.instance is None or model is None or isinstance(ref.instance, model):
        return
    raise TenantContextError(
        f"{factory_cls.__name__}: the tenant from {origin} is a {type(ref.instance).__name__}, "
        f"but {factory_cls.__name__} rows belong to a {model.__name__} ({spec.field}). Fix: "
        f"open tenant_context() with a {model.__name__}, or pass {spec.field}= explicitly."
    )


def decide(plan: CallPlan, enclosing: TenantRef | None) -> TenantDecision | None:
    """The one tenant of the call's tree, from the plan; raises before any write on conflict."""
    nodes = [n for n in plan.nodes() if n.role == "build"]
    scoped = [n for n in nodes if n.tenant is not None]
    if not scoped:
        return None
    spec = scoped[0].tenant
    assert spec is not None
    tenant_place = next((n for n in plan.nodes() if n.role == "tenant"), None)
    hard = _hard_sources(plan, nodes, spec)
    if hard:
        first, origin = hard[0]
        for ref, where in hard[1:]:
            if not ref.same(first) and not _CROSS.get():
                raise _conflict(plan.factory, (str(first), origin), (str(ref), where))
        _refuse_customized_tenant(plan, tenant_place, f"{first} from {origin}")
        return TenantDecision(first, origin)
    default = getattr(plan.factory, "_dotmac_default_tenant", None)
    ambient: list[tuple[TenantRef | None, str]] = [
        (
            tenant_ref(default) if default is not None else None,
            f"{plan.factory.__name__}.tenant_id",
        ),
        (enclosing, "the enclosing build"),
        (_CONTEXT.get(), "tenant_context"),
    ]
    for maybe, origin in ambient:
        if maybe is not None:
            _refuse_other_model(plan.factory, spec, maybe, origin)
            _refuse_customized_tenant(plan, tenant_place, f"{maybe} from {origin}")
            return TenantDecision(TenantRef(spec.coerce(maybe.id), maybe.instance), origin)
    if plan.strategy == enums.STUB_STRATEGY:
        return None
    if tenant_place is None:
        raise ConfigurationError(
            f"{plan.factory.__name__}: no tenant given and no way to make one for "
            f"{scoped[0].model.__name__}.{spec.field}. Fix: set Meta.tenant_factory, register a "
            "factory for the tenant model, pass the tenant id, or use tenant_context(...)."
        )
    return TenantDecision(None, "a new tenant", tenant_place.path)


def _refuse_customized_tenant(plan: CallPlan, place: PlanNode | None, chosen: str) -> None:
    if place is None:
        return
    for node in _subtree(place):
        keys = [name for name, _ in node.explicit()]
        if keys:
            raise TenantIsolationError(
                f"{plan.factory.__name__}: the tenant place {place.label!r} is customized "
                f"({', '.join(sorted(keys))}), but the tree's tenant is {chosen}, so no tenant "
                "is built. Fix: drop the customization, or drop what names the existing tenant."
            )


def _subtree(node: PlanNode) -> Iterator[PlanNode]:
    yield node
    for child in node.children.values():
        yield from _subtree(child)


def _hard_sources(
    plan: CallPlan, nodes: list[PlanNode], tree_spec: TenantSpec
) -> list[tuple[TenantRef, str]]:
    """Tenants that explicit values name: tenant keywords, rows passed in, foreign-key ids."""
    sources: list[tuple[TenantRef, str]] = []
    for node in nodes:
        spec = node.tenant
        for name, given in node.explicit():
            value = given.value
            if value is None or value is SKIP or is_declaration(value):
                continue
            where = format_path((*node.path, name))
            sources.extend((t, where) for t in _tenants_named(spec, name, value))
            row = _row_by_key(node, name, value)
            found = tenant_of(row) if row is not None else None
            if found is not None:
                sources.append((found, f"{where}={value!r}"))
    return [(TenantRef(tree_spec.coerce(r.id), r.instance), w) for r, w in sources]


def _tenants_named(spec: TenantSpec | None, key: str, value: Any) -> list[TenantRef]:
    """The tenants one keyword names: its tenant id, its tenant, or the tenants of the rows it
    holds (read through each row's own tenant field). Serves the plan and the per-object hook."""
    if value is None:
        return []
    if spec is not None and key == spec.field:
        return [TenantRef(spec.coerce(value))]
    if spec is not None and key == spec.relationship:
        ref = tenant_ref(value)
        return [TenantRef(spec.coerce(ref.id), ref.instance)]
    return _row_tenants(value)


_COLLECTIONS = (list, tuple, set, frozenset)


def _row_tenants(value: Any) -> list[TenantRef]:
    if not _may_hold_rows(type(value)):
        return []  # a plain value (str, int...) names no tenant: the common case, kept fast
    items = value if isinstance(value, _COLLECTIONS) else [value]
    found = (tenant_of(i) for i in items if _is_mapped(type(i)))
    return [t for t in found if t is not None]


_MAPPED: dict[type[Any], bool] = {}


def _may_hold_rows(kind: type[Any]) -> bool:
    """Whether a value of type ``kind`` may be or hold mapped rows (collections are looked into)."""
    return issubclass(kind, _COLLECTIONS) or _is_mapped(kind)


def _is_mapped(kind: type[Any]) -> bool:
    """Whether instances of ``kind`` are mapped rows (cached per type: plain values skip fast)."""
    known = _MAPPED.get(kind)
    if known is None:
        known = _MAPPED[kind] = isinstance(sa_inspect(kind, raiseerr=False), Mapper)
    return known


def _row_by_key(node: PlanNode, key: str, value: Any) -> Any:
    """For a foreign-key value (``project_id=7``), the row it points at (a SELECT, no write)."""
    relation = relationship_for_column(node.model, key)
    if relation in (None, key):
        return None
    target = sa_inspect(node.model).relationships[relation].mapper.class_
    if spec_for_model(target) is None:
        return None
    session = find_session(node.factory)
    if session is None:
        return None
    with session.no_autoflush:
        return session.get(target, value)


# -- the per-object hook ------------------------------------------------------------------------


def check_object(
    factory_cls: Any, kwargs: dict[str, Any], tenant: TenantRef | None
) -> dict[str, Any]:
    """Inject the tree's tenant into one object's keywords; refuse values of another tenant."""
    if tenant is None:
        return kwargs
    spec = spec_for(factory_cls)
    if spec is None:
        return kwargs
    for key, value in kwargs.items():
        for ref in _tenants_named(spec, key, value):
            if not ref.same(tenant) and not _CROSS.get():
                raise _conflict(factory_cls, (str(tenant), "the build tree"), (str(ref), key))
    if kwargs.get(spec.field) is not None or kwargs.get(spec.relationship or "") is not None:
        return kwargs
    return {**kwargs, **_injected(spec, tenant)}


def _conflict(
    factory_cls: Any, one: tuple[str, str], other: tuple[str, str]
) -> TenantIsolationError:
    return TenantIsolationError(
        f"{factory_cls.__name__}: one build tree would span two tenants: {one[0]} (from "
        f"{one[1]}) and {other[0]} (from {other[1]}). Fix: pass objects of one tenant, or wrap "
        "the call in allow_cross_tenant() if the test builds cross-tenant data on purpose."
    )
