"""Tenant-correct build trees: one tenant decision per call, made from the finished plan, for
every root.

Hard sources decide first (tenant keywords at any depth, linked or passed-in rows, foreign-key
ids, read through each row's own model's tenant field); then the ambient order: the factory-level
default, the enclosing build, ``tenant_context``, and finally one new tenant for the whole tree,
built at the plan's tenant place. The per-object hook only injects that tenant and checks values
computed during the build. Which rows are scoped, and how, is ``scoping``'s.
"""

from __future__ import annotations

import functools
import inspect as pyinspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from typing import Any, TypeVar

from factory import enums
from factory.declarations import SKIP
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper

from .context import set_for_block
from .customizations import format_path
from .errors import ConfigurationError, TenantContextError, TenantIsolationError
from .factory_boy_adapter import is_declaration
from .plan import CallPlan, PlanNode
from .relationships import identity_by_keys, load_row, relationship_for_column
from .scoping import (
    TenantDecision,
    TenantRef,
    TenantSpec,
    injected,
    is_tenant_model,
    spec_for_model,
    tenant_models,
    tenant_of,
    tenant_ref,
)
from .session import find_session

F = TypeVar("F", bound=Callable[..., Any])

# -- the ambient tenant -------------------------------------------------------------------------

_CONTEXT: ContextVar[TenantRef | None] = ContextVar("dotmac_tenant_context", default=None)
_CROSS: ContextVar[bool] = ContextVar("dotmac_allow_cross_tenant", default=False)

TENANT_DEFAULT = "_dotmac_default_tenant"
"""The class attribute a factory-level tenant (``Factory.tenant_id = ...``) is kept in."""


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
        known = ", ".join(sorted(m.__name__ for m in tenant_models())) or "none defined yet"
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


# -- the decision -------------------------------------------------------------------------------


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
        first, origin, _ = hard[0]
        for ref, where, _ in hard[1:]:
            if not ref.same(first) and not _CROSS.get():
                raise _conflict(plan.factory, (str(first), origin), (str(ref), where))
        _refuse_context_of_another_tenant(plan, spec, hard)
        _refuse_customized_tenant(plan, tenant_place, f"{first} from {origin}")
        return TenantDecision(_existing(plan, spec, first, origin), origin)
    default = getattr(plan.factory, TENANT_DEFAULT, None)
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
            ref = TenantRef(spec.coerce(maybe.id), maybe.instance)
            return TenantDecision(_existing(plan, spec, ref, origin), origin)
    if plan.strategy == enums.STUB_STRATEGY:
        return None
    if tenant_place is None:
        raise ConfigurationError(
            f"{plan.factory.__name__}: no tenant given and no way to make one for "
            f"{scoped[0].model.__name__}.{spec.field}. Fix: set Meta.tenant_factory, register a "
            "factory for the tenant model, pass the tenant id, or use tenant_context(...)."
        )
    return TenantDecision(None, "a new tenant", tenant_place.path)


def _existing(plan: CallPlan, spec: TenantSpec, ref: TenantRef, origin: str) -> TenantRef:
    """A tenant named by key only must exist before ``create()`` writes anything (one SELECT,
    usually an identity-map hit; not on SQLite); the row found is kept with the key."""
    model = spec.tenant_model
    if ref.instance is not None or ref.id is None or model is None:
        return ref
    if plan.strategy != enums.CREATE_STRATEGY:
        return ref
    session = find_session(plan.factory)
    if session is None or session.get_bind(mapper=sa_inspect(model)).dialect.name == "sqlite":
        # On SQLite a read before the first write makes concurrent writers on one file
        # deadlock (a lock upgrade); the tenant's foreign key refuses the INSERT there instead.
        return ref
    row = load_row(session, model, (ref.id,))
    if row is None:
        raise TenantContextError(
            f"{plan.factory.__name__}: the tenant from {origin} is {ref.id!r}, but no "
            f"{model.__name__} has that key. Fix: pass the key of an existing {model.__name__} "
            "(or the row itself), or leave the tenant out to build a new one."
        )
    return TenantRef(ref.id, row)


def _refuse_context_of_another_tenant(
    plan: CallPlan, spec: TenantSpec, hard: list[tuple[TenantRef, str, bool]]
) -> None:
    """Inside ``tenant_context(b)``, rows of tenant a passed in (``teams=[team_a]``) would make a
    tenant-a tree silently: refused, unless the tenant itself is named or crossing is allowed."""
    context = _CONTEXT.get()
    if context is None or _CROSS.get() or any(explicit for _, _, explicit in hard):
        return
    ref, origin, _ = hard[0]
    if ref.same(TenantRef(spec.coerce(context.id), context.instance)):
        return
    raise TenantIsolationError(
        f"{plan.factory.__name__}: inside tenant_context({context}), {origin} belongs to {ref}, "
        f"so the tree would silently be {ref}'s. Fix: pass rows of the context's tenant, name "
        f"the tenant explicitly ({spec.field}=...), or wrap the call in allow_cross_tenant()."
    )


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
) -> list[tuple[TenantRef, str, bool]]:
    """Tenants that explicit values name: tenant keywords (``explicit``), rows passed in,
    foreign-key ids."""
    sources: list[tuple[TenantRef, str, bool]] = []
    for node in nodes:
        spec = node.tenant
        names_tenant = {spec.field, spec.relationship} if spec is not None else set()
        values = {k: v.value for k, v in node.explicit()}
        for name, given in node.explicit():
            value = given.value
            if value is None or value is SKIP or is_declaration(value):
                continue
            where = format_path((*node.path, name))
            explicit = name in names_tenant
            sources.extend((t, where, explicit) for t in _tenants_named(spec, name, value))
            row = _row_by_key(node, name, values)
            found = tenant_of(row) if row is not None else None
            if found is not None:
                sources.append((found, f"{where}={value!r}", False))
    return [(TenantRef(tree_spec.coerce(r.id), r.instance), w, e) for r, w, e in sources]


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
    known = _HOLDS_ROWS.get(kind)
    if known is None:
        known = _HOLDS_ROWS[kind] = issubclass(kind, _COLLECTIONS) or _is_mapped(kind)
    return known


_HOLDS_ROWS: dict[type[Any], bool] = {type(None): False}
"""``_may_hold_rows`` per type, once asked (an unknown type may hold rows)."""


def _is_mapped(kind: type[Any]) -> bool:
    """Whether instances of ``kind`` are mapped rows (cached per type: plain values skip fast)."""
    known = _MAPPED.get(kind)
    if known is None:
        known = _MAPPED[kind] = isinstance(sa_inspect(kind, raiseerr=False), Mapper)
    return known


def _row_by_key(node: PlanNode, key: str, given: dict[str, Any]) -> Any:
    """For a foreign-key value (``project_id=7``), the row it points at (a SELECT, no write)."""
    relation = relationship_for_column(node.model, key)
    if relation in (None, key):
        return None
    linked = node.fields.get(str(relation))
    if linked is not None and linked.source == "link by key" and linked.value is not SKIP:
        return linked.value  # the plan loaded it already
    found = identity_by_keys(node.model, str(relation), given)
    if found is None or spec_for_model(found[0]) is None:
        return None
    session = find_session(node.factory)
    if session is None:
        return None
    return load_row(session, *found)


# -- the per-object hook ------------------------------------------------------------------------


def check_object(
    factory_cls: Any, kwargs: dict[str, Any], tenant: TenantRef, spec: TenantSpec | None
) -> dict[str, Any]:
    """Inject the tree's tenant into one object's keywords; refuse values of another tenant.
    ``spec`` is ``spec_for(factory_cls)``, which the caller keeps for its whole call."""
    if spec is None:
        return kwargs
    names_tenant = (spec.field, spec.relationship)
    for key, value in kwargs.items():
        # most keywords are plain values (str, int...) at fields that name no tenant: one type
        # lookup each instead of the general walk
        if key not in names_tenant and not _HOLDS_ROWS.get(type(value), True):
            continue
        if _plainly_of(value, tenant) or (key == spec.field and value == tenant.id):
            continue
        for ref in _tenants_named(spec, key, value):
            if not ref.same(tenant) and not _CROSS.get():
                raise _conflict(factory_cls, (str(tenant), "the build tree"), (str(ref), key))
    if kwargs.get(spec.field) is not None or kwargs.get(spec.relationship or "") is not None:
        return kwargs
    return {**kwargs, **injected(spec, tenant)}


def _plainly_of(value: Any, tenant: TenantRef) -> bool:
    """Whether ``value`` is the tree's tenant row, or a row whose tenant column holds the tree's
    tenant id: the common keywords of a tree, decided without the general walk (which gives the
    same answer for them)."""
    if value is tenant.instance:
        return True
    if tenant.id is None or not _is_mapped(type(value)):
        return False
    spec = spec_for_model(type(value))
    if spec is None:
        return False
    raw = sa_inspect(value).dict.get(spec.field)
    return raw is not None and bool(raw == tenant.id)


def _conflict(
    factory_cls: Any, one: tuple[str, str], other: tuple[str, str]
) -> TenantIsolationError:
    return TenantIsolationError(
        f"{factory_cls.__name__}: one build tree would span two tenants: {one[0]} (from "
        f"{one[1]}) and {other[0]} (from {other[1]}). Fix: pass objects of one tenant, or wrap "
        "the call in allow_cross_tenant() if the test builds cross-tenant data on purpose."
    )
