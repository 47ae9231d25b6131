"""Tenant-correct build trees: one tenant per tree, from hard data first, then ambient defaults."""

from __future__ import annotations

import functools
import inspect as pyinspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, TypeVar

from factory import enums
from factory.base import OptionDefault
from factory.declarations import SKIP
from sqlalchemy import inspect as sa_inspect

from .errors import ConfigurationError, TenantIsolationError
from .factories import (
    BuildTree,
    DotmacOptions,
    FactoryMeta,
    ModelT,
    SQLAlchemyFactory,
    current_tree,
    registry_of,
)
from .plan import CallPlan, is_declaration
from .relationships import relationship_for_column

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


_CONTEXT: ContextVar[TenantRef | None] = ContextVar("dotmac_tenant_context", default=None)
_CROSS: ContextVar[bool] = ContextVar("dotmac_allow_cross_tenant", default=False)


class tenant_context:
    """Make a tenant the default for everything built inside (nests; per thread and task)."""

    def __init__(self, tenant_or_id: Any) -> None:
        self.tenant = tenant_ref(tenant_or_id)
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


@contextmanager
def allow_cross_tenant() -> Iterator[None]:
    """Disable the cross-tenant guard, to build invalid data on purpose."""
    token = _CROSS.set(True)
    try:
        yield
    finally:
        _CROSS.reset(token)


def tenant_of(instance: Any, tenant_field: str) -> TenantRef | None:
    """The tenant a mapped instance belongs to, if it is tenant-scoped and says so."""
    state = sa_inspect(instance, raiseerr=False)
    if state is None or not hasattr(state, "mapper") or tenant_field not in state.mapper.columns:
        return None
    value = getattr(instance, tenant_field)
    if value is not None:
        return TenantRef(value)
    key = relationship_for_column(type(instance), tenant_field)
    owner = getattr(instance, key) if key else None
    return tenant_ref(owner) if owner is not None else None


def _instances(value: Any) -> list[Any]:
    items = value if isinstance(value, (list, tuple, set, frozenset)) else [value]
    return [i for i in items if sa_inspect(i, raiseerr=False) is not None]


class TenantOptions(DotmacOptions):
    """Adds ``tenant_field``, ``tenant_relationship`` and ``tenant_factory``."""

    def _build_default_options(self) -> list[OptionDefault]:
        return [
            *super()._build_default_options(),
            OptionDefault("tenant_field", "tenant_id", inherit=True),
            OptionDefault("tenant_relationship", None, inherit=True),
            OptionDefault("tenant_factory", None, inherit=True),
        ]


class TenantFactoryMeta(FactoryMeta):
    """Gives tenant factories the DotMac-style ``Factory.tenant_id = ...`` default."""

    @property
    def tenant_id(cls) -> Any:
        """Factory-level default tenant (an id or instance); ``None`` when unset."""
        return getattr(cls, "_dotmac_default_tenant", None)

    @tenant_id.setter
    def tenant_id(cls, value: Any) -> None:
        type.__setattr__(cls, "_dotmac_default_tenant", value)


class TenantIsolatedFactory(SQLAlchemyFactory[ModelT], metaclass=TenantFactoryMeta):
    """Base for tenant-scoped models: every object of a build tree shares one tenant."""

    _options_class = TenantOptions

    class Meta:
        abstract = True

    @classmethod
    def _tenant_scoped(cls) -> bool:
        mapper = sa_inspect(cls._meta.model, raiseerr=False)
        return mapper is not None and cls._meta.tenant_field in mapper.columns

    @classmethod
    def _tenant_relationship(cls) -> str | None:
        explicit: str | None = cls._meta.tenant_relationship
        return explicit or relationship_for_column(cls._meta.model, cls._meta.tenant_field)

    @classmethod
    def _tenant_model(cls) -> type[Any] | None:
        """The model the tenant relationship points at, if there is one."""
        key = cls._tenant_relationship()
        if key is None:
            return None
        model: type[Any] = sa_inspect(cls._meta.model).relationships[key].mapper.class_
        return model

    @classmethod
    def _tenant_factory(cls) -> Any:
        if cls._meta.tenant_factory is not None:
            return cls._meta.tenant_factory
        tenant_model = cls._tenant_model()
        if tenant_model is None:
            raise ConfigurationError(
                f"{cls.__name__}: no tenant given and no way to make one: "
                f"{cls._meta.model.__name__}.{cls._meta.tenant_field} has no relationship to a "
                "tenant model. Fix: set Meta.tenant_factory, or pass tenant_id=, or use "
                "tenant_context(...)."
            )
        return registry_of(cls).factory_for(tenant_model)

    # -- tree resolution --------------------------------------------------------------------

    @classmethod
    def _begin_tree(cls, tree: BuildTree) -> None:
        if cls._tenant_scoped():
            tree.values["tenant"] = _hard_tenant(cls, tree.plan) or cls._ambient_tenant(tree)

    @classmethod
    def _ambient_tenant(cls, tree: BuildTree) -> TenantRef | None:
        """Factory-level default > enclosing tree > tenant_context > a new tenant for this tree."""
        if cls.tenant_id is not None:
            return tenant_ref(cls.tenant_id)
        enclosing = tree.parent.values.get("tenant") if tree.parent else None
        if enclosing is not None:
            return enclosing  # type: ignore[no-any-return]
        active = _CONTEXT.get()
        if active is not None or tree.strategy == enums.STUB_STRATEGY:
            return active
        maker = cls._tenant_factory()
        made = maker.create() if tree.strategy == enums.CREATE_STRATEGY else maker.build()
        return tenant_ref(made)

    @classmethod
    def _build(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        return super()._build(model_class, *args, **cls._with_tenant(kwargs))  # type: ignore[no-untyped-call]

    @classmethod
    def _create(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        return super()._create(model_class, *args, **cls._with_tenant(kwargs))

    @classmethod
    def _with_tenant(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Fill in the tree's tenant; refuse objects that belong to another one."""
        if not cls._tenant_scoped():
            return kwargs
        tree = current_tree()
        if tree is not None and "tenant" not in tree.values:
            tree.values["tenant"] = cls._ambient_tenant(tree)
        tenant: TenantRef | None = tree.values.get("tenant") if tree is not None else None
        field, relation = cls._meta.tenant_field, cls._tenant_relationship()
        for key, value in kwargs.items():
            for ref, _ in _tenants_in(key, value, field, relation):
                if tenant is not None and not ref.same(tenant) and not _CROSS.get():
                    raise _conflict(cls, (str(tenant), "the build tree"), (str(ref), key))
        if (
            tenant is None
            or kwargs.get(field) is not None
            or kwargs.get(relation or "") is not None
        ):
            return kwargs
        if tenant.id is not None:
            return {**kwargs, field: tenant.id}
        if relation is not None:
            return {**kwargs, relation: tenant.instance}
        return kwargs


def _tenants_in(
    key: str, value: Any, field: str, relation: str | None
) -> list[tuple[TenantRef, str]]:
    """Tenants a keyword value names: an id, a tenant, or tenant-scoped instances (with how)."""
    if value is None:
        return []
    if key == field:
        return [(TenantRef(value), "=")]
    if key == relation:
        return [(tenant_ref(value), "=")]
    return [
        (t, f"=<{type(i).__name__}>")
        for i in _instances(value)
        if (t := tenant_of(i, field)) is not None
    ]


def _hard_tenant(root: Any, plan: CallPlan) -> TenantRef | None:
    """The tenant that explicit keywords and passed-in instances agree on, if any."""
    sources: list[tuple[TenantRef, str]] = []
    for node in plan.nodes():
        if not (issubclass(node.factory, TenantIsolatedFactory) and node.factory._tenant_scoped()):
            continue
        field, relation = node.factory._meta.tenant_field, node.factory._tenant_relationship()
        for key, value in node.caller.items():
            where = ".".join((*node.path, key))
            if value is None or "__" in key:
                continue
            sources.extend(
                (ref, where + how) for ref, how in _tenants_in(key, value, field, relation)
            )
            if key not in (field, relation):
                row_tenant = _tenant_of_row(node.factory, key, value)
                if row_tenant is not None:
                    sources.append((row_tenant, f"{where}={value!r}"))
    if not sources:
        return None
    first, origin = sources[0]
    for ref, where in sources[1:]:
        if not ref.same(first) and not _CROSS.get():
            raise _conflict(root, (str(first), origin), (str(ref), where))
    return first


def _tenant_of_row(factory_cls: Any, key: str, value: Any) -> TenantRef | None:
    """For a foreign-key value (``customer_id=7``), the tenant of the row it points at.

    Only a SELECT, never a write; skipped when no session is at hand.
    """
    model = factory_cls._meta.model
    relation = relationship_for_column(model, key)
    if relation in (None, key) or is_declaration(value) or value is SKIP:
        return None
    session = factory_cls._meta.sqlalchemy_session or registry_of(factory_cls).bound_session
    if session is None:
        return None
    target = sa_inspect(model).relationships[relation].mapper.class_
    with session.no_autoflush:
        row = session.get(target, value)
    return tenant_of(row, factory_cls._meta.tenant_field) if row is not None else None


def _conflict(
    factory_cls: Any, one: tuple[str, str], other: tuple[str, str]
) -> TenantIsolationError:
    return TenantIsolationError(
        f"{factory_cls.__name__}: one build tree would span two tenants: {one[0]} (from "
        f"{one[1]}) and {other[0]} (from {other[1]}). Fix: pass objects of one tenant, or wrap "
        "the call in allow_cross_tenant() if the test builds cross-tenant data on purpose."
    )
