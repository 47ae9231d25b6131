"""SQLAlchemyFactory: factory_boy's SQLAlchemyModelFactory with a bound session, row tracking,
validated calls and explicit priorities."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from factory import enums
from factory.alchemy import SQLAlchemyModelFactory, SQLAlchemyOptions
from factory.base import FactoryMetaClass, OptionDefault
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import DBAPIError, SAWarning
from sqlalchemy.orm import Session

from .collector import collector_paused
from .context import set_for_block, shallow_copy
from .customizations import Customization, LinkOnly, Routed
from .errors import BatchError, BatchSizeError, ConfigurationError, RowsModeError
from .factory_boy_adapter import STOCK_BASES, overrides
from .factory_boy_adapter.builder import CompiledFactory, compiled
from .persistence import (
    ROWS,
    Saved,
    UnitOfWork,
    current_unit,
    persistence_for,
    unit_of_work,
)
from .plan import CallPlan, plan_call, running_hooks, takes_name
from .registry import CleanupHandler, FactoryRegistry, TrackedRow, registry
from .rows import new_row, refuse_what_needs_instances
from .scoping import TenantRef, TenantSpec, remember_tenant_factory, spec_for, tenant_ref
from .session import (
    async_session_of,
    autocommits,
    bridged,
    find_session,
    recover,
    session_for,
)
from .tenancy import TENANT_DEFAULT, check_object, decide, validated_tenant

ModelT = TypeVar("ModelT")


@dataclass(eq=False)
class BuildTree:
    """Per-call state of one root factory call and everything it builds below it."""

    plan: CallPlan
    strategy: str
    parent: BuildTree | None
    tenant: TenantRef | None = None
    sessions: dict[Any, Session] = field(default_factory=dict)
    specs: dict[Any, TenantSpec | None] = field(default_factory=dict)

    @property
    def makes_tenant(self) -> bool:
        """Whether ``kwargs()`` makes a new tenant for this tree (each tree of a batch its own)."""
        decision = self.plan.tenant
        return decision is not None and decision.place is not None and self.tenant is None

    def kwargs(self) -> dict[str, Any]:
        """factory_boy keywords for this tree, making its new tenant first if it needs one."""
        if self.makes_tenant:
            assert self.plan.tenant is not None and self.plan.tenant.place is not None
            self.tenant = _make_tenant(self.plan, self.plan.tenant.place, self.strategy)
        return self.plan.kwargs(self.tenant)

    def spec(self, factory_cls: Any) -> TenantSpec | None:
        """How ``factory_cls``'s rows name their tenant (read once per call)."""
        if factory_cls not in self.specs:
            self.specs[factory_cls] = spec_for(factory_cls)
        return self.specs[factory_cls]

    def session(self, factory_cls: Any) -> Session:
        """The session ``factory_cls`` writes through in this call (resolved once per call)."""
        found = self.sessions.get(factory_cls)
        if found is None:
            found = self.sessions[factory_cls] = session_for(factory_cls)
        return found


_TREE: ContextVar[BuildTree | None] = ContextVar("dotmac_build_tree", default=None)
_ROUTED: ContextVar[tuple[Routed, ...]] = ContextVar("dotmac_routed", default=())


def current_tree() -> BuildTree | None:
    """The build tree being built in this context, if any."""
    return _TREE.get()


def _entered(tree: BuildTree) -> AbstractContextManager[None]:
    return set_for_block(_TREE, tree)


def registry_of(factory_cls: Any) -> FactoryRegistry:
    """The registry a factory registers and tracks in."""
    chosen: FactoryRegistry | None = factory_cls._meta.registry
    return chosen if chosen is not None else registry


def _check_registry(meta: object, value: object) -> None:
    if value is not None and not isinstance(value, FactoryRegistry):
        raise ConfigurationError(
            f"{meta}: Meta.registry must be a FactoryRegistry, got {value!r}. "
            "Fix: pass a FactoryRegistry instance, or leave it unset for the default registry."
        )


def _check_register(meta: object, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(f"{meta}: Meta.register must be True or False, got {value!r}.")


def _check_chunk_size(meta: object, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(
            f"{meta}: Meta.batch_chunk_size must be a whole number >= 1, got {value!r}. Fix: "
            "leave it unset (1000) or pass how many objects create_batch writes per round."
        )


class DotmacOptions(SQLAlchemyOptions):
    """factory_boy's SQLAlchemy options plus ``registry`` and ``register``."""

    # Typed view of the options factory_boy sets on the instance at class definition.
    model: Any
    abstract: bool
    strategy: str
    sqlalchemy_session: Session | None
    sqlalchemy_session_factory: Callable[[], Session] | None
    sqlalchemy_session_persistence: str | None
    sqlalchemy_get_or_create: tuple[str, ...]
    registry: FactoryRegistry | None
    register: bool
    batch_chunk_size: int
    faker_weighting: bool

    def _build_default_options(self) -> list[OptionDefault]:
        """The options list, made once per options class (factory_boy makes it anew for every
        factory class, and pytest-factoryboy makes a factory class per model fixture call)."""
        found = _DEFAULT_OPTIONS.get(type(self))
        if found is None:
            found = _DEFAULT_OPTIONS[type(self)] = self._default_options()
        return list(found)

    def _default_options(self) -> list[OptionDefault]:
        return [
            *super()._build_default_options(),  # type: ignore[no-untyped-call]
            OptionDefault("registry", None, inherit=True, checker=_check_registry),
            OptionDefault("register", True, inherit=False, checker=_check_register),
            OptionDefault("batch_chunk_size", 1000, inherit=True, checker=_check_chunk_size),
            OptionDefault("faker_weighting", True, inherit=True),
        ]


_DEFAULT_OPTIONS: dict[type[Any], list[OptionDefault]] = {}
"""Each options class's option list (the entries are read-only)."""


class FactoryMeta(FactoryMetaClass):
    """Registers concrete factories and lets ``Factory(...)`` take positional customizations."""

    _meta: Any

    def __new__(mcs, class_name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        own_meta = vars(attrs.get("Meta", object))
        new_class = super().__new__(mcs, class_name, bases, attrs)  # type: ignore[no-untyped-call]
        meta = new_class._meta
        # Only a class whose own Meta names a model or a registry registers: subclasses that
        # inherit both (pytest-factoryboy's throwaway ones) never compete for a name.
        declares = "model" in own_meta or "registry" in own_meta
        if declares and not meta.abstract and meta.model is not None and meta.register:
            registry_of(new_class).auto_register(new_class)
        return new_class

    def __call__(cls, *routed: Routed, **kwargs: Any) -> Any:
        strategy = cls._meta.strategy
        if strategy not in (enums.BUILD_STRATEGY, enums.CREATE_STRATEGY, enums.STUB_STRATEGY):
            return super().__call__(**kwargs)  # type: ignore[no-untyped-call]
        return getattr(cls, strategy)(*routed, **kwargs)

    @property
    def instances(cls) -> list[Any]:
        """Instances this factory created in its registry's current tracking scope."""
        return registry_of(cls).instances_of(cls)


class SQLAlchemyFactory(SQLAlchemyModelFactory, Generic[ModelT], metaclass=FactoryMeta):
    """Drop-in base for factory_boy SQLAlchemy factories (every Meta option keeps working)."""

    _options_class = DotmacOptions
    _meta: DotmacOptions

    class Meta:
        abstract = True
        sqlalchemy_session_persistence = "flush"  # every created instance has its primary key

    if TYPE_CHECKING:
        # ``Factory(...)`` runs FactoryMeta.__call__ (the default strategy); mypy types a call
        # by the class's __new__, which factory_boy leaves untyped: this one is for mypy only.
        def __new__(cls, *routed: Routed, **kwargs: Any) -> ModelT:  # type: ignore[misc]
            ...

    # -- public API -------------------------------------------------------------------------

    @classmethod
    def create(cls, *routed: Routed, **kwargs: Any) -> ModelT:
        """Create and persist one instance (and everything it needs)."""
        return cls._call(enums.CREATE_STRATEGY, routed, kwargs)  # type: ignore[no-any-return]

    @classmethod
    def build(cls, *routed: Routed, **kwargs: Any) -> ModelT:
        """Build one instance without writing anything."""
        return cls._call(enums.BUILD_STRATEGY, routed, kwargs)  # type: ignore[no-any-return]

    @classmethod
    def stub(cls, *routed: Routed, **kwargs: Any) -> Any:
        """A StubObject with the factory's attributes."""
        return cls._call(enums.STUB_STRATEGY, routed, kwargs)

    @classmethod
    def create_batch(
        cls,
        size: int | Routed | None = None,
        *routed: Routed,
        count: int | None = None,
        **kwargs: Any,
    ) -> list[ModelT]:
        """Create ``size`` (alias ``count``) instances: planned once, written in chunks of
        ``Meta.batch_chunk_size``, all or nothing."""
        number, routed, kwargs = _batch_arguments(cls, size, count, routed, kwargs)
        if overrides(cls, "create", "_generate"):  # the user's own code runs per object
            return [cls.create(*routed, **kwargs) for _ in range(number)]
        rows: RowsMode = "preferred" if _ROWS_PREFERRED.get() else "never"
        with collector_paused():
            return cls._run_batch(number, routed, kwargs, rows)  # type: ignore[no-any-return]

    @classmethod
    def build_batch(
        cls,
        size: int | Routed | None = None,
        *routed: Routed,
        count: int | None = None,
        **kwargs: Any,
    ) -> list[ModelT]:
        """Build ``size`` (alias ``count``) instances."""
        number, routed, kwargs = _batch_arguments(cls, size, count, routed, kwargs)
        return [cls.build(*routed, **kwargs) for _ in range(number)]

    @classmethod
    def insert_batch(
        cls,
        size: int | Routed | None = None,
        *routed: Routed,
        count: int | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Rows mode, for seeding and load tests: ``create_batch``'s plan, declarations and
        draws, with the rows written by Core in multi-row INSERTs instead of the ORM's flush.
        Returns the roots' primary keys (a tuple for a composite key); the rows are tracked, so
        cleanup deletes them. What needs ORM instances (hooks, ``_create`` overrides, mapper
        events) raises ``RowsModeError`` naming ``create_batch`` before anything is built."""
        number, routed, kwargs = _batch_arguments(cls, size, count, routed, kwargs)
        with collector_paused():
            made = cls._run_batch(number, routed, kwargs, "always")
        return [_primary_key(instance) for instance in made]

    @classmethod
    async def create_async(cls, *routed: Routed, **kwargs: Any) -> ModelT:
        """``create()`` for an ``AsyncSession``: the whole call runs in the session's
        ``run_sync`` (SQLAlchemy's greenlet bridge); with a sync session it just runs."""
        return await _bridged(cls, lambda: cls.create(*routed, **kwargs))  # type: ignore[no-any-return]

    @classmethod
    async def create_batch_async(
        cls,
        size: int | Routed | None = None,
        *routed: Routed,
        count: int | None = None,
        **kwargs: Any,
    ) -> list[ModelT]:
        """``create_batch()`` for an ``AsyncSession`` (all or nothing, as the sync one)."""
        work = lambda: cls.create_batch(size, *routed, count=count, **kwargs)  # noqa: E731
        return await _bridged(cls, work)  # type: ignore[no-any-return]

    @classmethod
    async def insert_batch_async(
        cls,
        size: int | Routed | None = None,
        *routed: Routed,
        count: int | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """``insert_batch()`` (rows mode) for an ``AsyncSession``."""
        work = lambda: cls.insert_batch(size, *routed, count=count, **kwargs)  # noqa: E731
        return await _bridged(cls, work)  # type: ignore[no-any-return]

    @classmethod
    async def cleanup_async(cls) -> None:
        """``cleanup()`` for rows written through an ``AsyncSession``."""
        await _bridged(cls, cls.cleanup)

    @classmethod
    def cleanup(cls) -> None:
        """Delete the rows this factory created in the current scope, children first."""
        registry_of(cls).cleanup_factory(cls)

    @classmethod
    def add_cleanup_handler(cls, handler: CleanupHandler) -> None:
        """Run ``handler`` when this factory's rows are cleaned up."""
        registry_of(cls).add_cleanup_handler(handler, cls)

    # -- factory_boy extension points -------------------------------------------------------

    @classmethod
    def _call(cls, strategy: str, routed: tuple[Routed, ...], kwargs: dict[str, Any]) -> Any:
        """Every public call goes through ``_generate``, as in factory_boy, so a subclass that
        overrides it still sees each call; the positional customizations wait in a contextvar."""
        if not routed:  # the common case: nothing waits, nothing to set
            return cls._generate(strategy, kwargs)
        with set_for_block(_ROUTED, routed):
            return cls._generate(strategy, kwargs)

    @classmethod
    def _generate(cls, strategy: str, params: dict[str, Any]) -> Any:
        """factory_boy's root entry point; routed through the plan like every public call."""
        routed = _ROUTED.get()
        if routed:
            _ROUTED.set(())  # taken: a nested call made before ours runs has none
        return cls._run(strategy, routed, params)

    @classmethod
    def explain(cls, *routed: Routed, **kwargs: Any) -> CallPlan:
        """The validated plan of ``cls(*routed, **kwargs)``, without building or writing anything
        (named after SQL's EXPLAIN: a verb no model field is likely to shadow).

        Lists every place (path, model, factory), each field's winning value and where it came
        from, the linked rows and the tree's tenant.
        """
        return plan_for(cls, *routed, **kwargs)

    @classmethod
    def _run(cls, strategy: str, routed: tuple[Routed, ...], kwargs: dict[str, Any]) -> Any:
        """Plan and validate the whole call, decide its tenant, then let factory_boy build it."""
        if cls._meta.abstract:
            return super()._generate(strategy, kwargs)  # type: ignore[no-untyped-call]
        tree = cls._tree(plan_call(cls, strategy, routed, kwargs))
        if strategy != enums.CREATE_STRATEGY:
            with _entered(tree):
                return compiled(cls, strategy, tree.kwargs()).build()
        outer = current_unit()
        sessions = _sessions_of(tree)
        unit = UnitOfWork(parent=outer)
        if outer is None:
            # A root call whose factories all flush (the default) on connections with
            # transactions is undone as a whole if it fails: a SAVEPOINT opens before its first
            # early write (see UnitOfWork.before_early_write); it tracks at its end.
            unit.undoable = _modes(tree.plan) <= {"flush"} and not any(
                autocommits(s) for s in sessions
            )
            unit.atomic = unit.undoable
        elif outer.atomic:
            for session in sessions:  # this nested call writes before the root's end
                unit.before_early_write(session)
        try:
            with unit_of_work(unit), _entered(tree):
                made = compiled(cls, strategy, tree.kwargs()).build()
                unit.write()
        except BaseException as exc:
            if outer is None and unit.undo():  # nothing of the call stays, nothing is tracked
                unit.abandon()
                _recover_after(exc, sessions)
            elif outer is None or not outer.atomic:  # a batch undoes its own, to its SAVEPOINT
                unit.abandon()  # what an early write put in the database stays tracked
                _track(unit)
                _recover_after(exc, sessions)
            raise
        if outer is None:
            unit.release()
        if outer is not None and outer.atomic:
            outer.written.extend(unit.written)  # tracked with the batch or root, or not at all
        else:
            _track(unit)
        return made

    @classmethod
    def _tree(cls, plan: CallPlan) -> BuildTree:
        """The validated call's per-call state: its sessions (checked now) and its tenant."""
        tree = BuildTree(plan, plan.strategy, current_tree())
        if plan.strategy == enums.CREATE_STRATEGY:
            for node in plan.nodes():
                if node.role == "build" and hasattr(node.factory._meta, "sqlalchemy_session"):
                    _resolve_session(tree, node.factory)
        _decide_tenant(plan)
        if plan.tenant is not None:
            tree.tenant = plan.tenant.ref
        return tree

    @classmethod
    def _run_batch(
        cls,
        number: int,
        routed: tuple[Routed, ...],
        kwargs: dict[str, Any],
        rows_mode: RowsMode = "never",
    ) -> Any:
        """Plan once, build ``number`` trees, write them in chunks inside SAVEPOINTs (in rows
        mode with Core: always, or where the plan allows when preferred)."""
        if cls._meta.abstract or number == 0:
            return [cls.create(*routed, **kwargs) for _ in range(number)]
        plan = plan_call(cls, enums.CREATE_STRATEGY, routed, kwargs)
        rows = rows_mode != "never"
        if rows:
            try:
                refuse_what_needs_instances(cls, plan.nodes(), running_hooks)
            except RowsModeError:
                if rows_mode == "always":
                    raise
                rows = False
        tree = cls._tree(plan)
        sessions = _sessions_of(tree)
        if any(autocommits(s) for s in sessions):
            if rows:
                raise RowsModeError(
                    f"{cls.__name__}.insert_batch: the session's connection is AUTOCOMMIT, so a "
                    f"failed batch could not be undone. Fix: use {cls.__name__}.create_batch(...)."
                )
            return _one_by_one(cls, number, routed, kwargs)
        savepoints = _savepoints(plan, sessions, rows)
        unit = UnitOfWork(atomic=True, rows=rows)
        made: list[Any] = []
        builder: CompiledFactory | None = None
        try:
            with unit_of_work(unit):
                for index in range(number):
                    unit.index = index
                    each = shallow_copy(tree)
                    with _entered(each):
                        if builder is None or tree.makes_tenant:  # else every tree is alike
                            builder = compiled(cls, enums.CREATE_STRATEGY, each.kwargs())
                        made.append(builder.build())
                    if len(unit.pending) >= cls._meta.batch_chunk_size:
                        unit.write()
                unit.write()
        except BaseException as exc:  # a cancelled task too: its batch is undone all the same
            _undo(savepoints, sessions, exc)
            if not isinstance(exc, DBAPIError):
                raise
            failed = _failing_index(unit.pending, sessions)
            raise _batch_error(cls, number, failed, exc) from exc
        for savepoint in reversed(savepoints):
            if savepoint.is_active:
                savepoint.commit()
        _track(unit)
        return made

    @classmethod
    def _build(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        tree = current_tree()
        if tree is not None and tree.tenant is not None:
            kwargs = check_object(cls, kwargs, tree.tenant, tree.spec(cls))
        return super()._build(model_class, *args, **kwargs)  # type: ignore[no-untyped-call]

    @classmethod
    def _create(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        tree = current_tree()
        if tree is not None and tree.tenant is not None:
            kwargs = check_object(cls, kwargs, tree.tenant, tree.spec(cls))
        session = tree.session(cls) if tree is not None else session_for(cls)
        if cls._meta.sqlalchemy_get_or_create:
            unit = current_unit()
            if unit is not None:
                unit.before_early_write(session)
            session.flush()  # an early write: the lookup must see what this call built so far
            found = cls._get_or_create(model_class, session, args, kwargs)  # type: ignore[no-untyped-call]
            if sa_inspect(found).pending:
                session.flush()
            return found
        return cls._save(model_class, session, args, kwargs)

    @classmethod
    def _save(
        cls, model_class: type[Any], session: Session, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        unit = current_unit()
        if unit is not None and unit.rows:
            instance, strategy = new_row(model_class, args, kwargs), ROWS
        else:
            instance = model_class(*args, **kwargs)
            strategy = persistence_for(cls._meta.sqlalchemy_session_persistence)
        if unit is None:  # called outside a root call (factory_boy internals): write now
            strategy.save(session, instance)
            strategy.save_many(session, [instance])
            registry_of(cls).track(instance, cls, session)
        else:
            unit.save(cls, session, instance, strategy)
        return instance


async def _bridged(factory_cls: Any, work: Callable[[], Any]) -> Any:
    """Run ``work`` (a sync call) where ``factory_cls``'s AsyncSession can serve it: inside that
    session's ``run_sync``; with a sync session, directly."""
    session = await async_session_of(factory_cls)
    if session is None:
        return work()

    def in_greenlet(_sync_session: Session) -> Any:
        with bridged(session):
            return work()

    return await session.run_sync(in_greenlet)


def _resolve_session(tree: BuildTree, factory_cls: Any) -> None:
    """Choose each factory's session before anything is built: a factory on our ``_create``
    must have one; one whose own ``_create`` may never touch a session keeps any it has."""
    if not overrides(factory_cls, "_create"):
        tree.session(factory_cls)
        return
    found = find_session(factory_cls)
    if found is not None:
        tree.sessions[factory_cls] = found


RowsMode = Literal["never", "preferred", "always"]
_ROWS_PREFERRED: ContextVar[bool] = ContextVar("dotmac_rows_preferred", default=False)


def rows_where_possible() -> AbstractContextManager[None]:
    """For the block, every ``create_batch`` that rows mode can serve is written with Core (as
    ``insert_batch``) and returns its rows as detached instances; the others run as usual.
    ``dotmac-factoryboy seed`` runs its hook inside it."""
    return set_for_block(_ROWS_PREFERRED, True)


def _sessions_of(tree: BuildTree) -> list[Session]:
    """The sessions a call writes through, each once."""
    return list({id(s): s for s in tree.sessions.values()}.values())


def _modes(plan: CallPlan) -> set[str | None]:
    """The ``sqlalchemy_session_persistence`` of every factory the call builds with."""
    return {
        n.factory._meta.sqlalchemy_session_persistence
        for n in plan.nodes()
        if hasattr(n.factory._meta, "sqlalchemy_session_persistence")
    }


def _savepoints(plan: CallPlan, sessions: list[Session], rows: bool = False) -> list[Any]:
    """A SAVEPOINT per session, so a failed batch is undone as a whole; none when a factory's
    persistence cannot wait (``commit``: what it committed cannot be undone either)."""
    writes_at_once = not rows and any(not persistence_for(m).deferred for m in _modes(plan))
    return [] if writes_at_once else [s.begin_nested() for s in sessions]


def _undo(savepoints: list[Any], sessions: list[Session], exc: BaseException) -> None:
    """Roll a failed call back to its SAVEPOINTs (and recover after a cancellation)."""
    for savepoint in reversed(savepoints):
        savepoint.rollback()  # also ends a SAVEPOINT a failed flush deactivated
    _recover_after(exc, sessions)


def _recover_after(exc: BaseException, sessions: list[Session]) -> None:
    """After a cancellation (not an ``Exception``: SQLAlchemy invalidated the connection in the
    middle of a statement) roll the sessions back, so they are usable again."""
    if not isinstance(exc, Exception):
        for session in sessions:
            recover(session)


def _primary_key(instance: Any) -> Any:
    """A row's primary key: the value, or a tuple for a composite key."""
    identity = sa_inspect(instance).identity
    return identity[0] if identity is not None and len(identity) == 1 else identity


def _track(unit: UnitOfWork) -> None:
    """Track what a unit of work wrote, once all of it is in the database."""
    by_factory: dict[Any, list[TrackedRow]] = {}
    by_registry: dict[int, tuple[FactoryRegistry, list[TrackedRow]]] = {}
    for saved in unit.written:
        rows = by_factory.get(saved.factory)
        if rows is None:  # the first row of this factory: its registry's list
            chosen = registry_of(saved.factory)
            rows = by_factory[saved.factory] = by_registry.setdefault(id(chosen), (chosen, []))[1]
        rows.append(TrackedRow(saved.instance, saved.factory, saved.session))
    for chosen, rows in by_registry.values():
        chosen.track_many(rows)


def _one_by_one(
    factory_cls: Any, number: int, routed: tuple[Routed, ...], kwargs: dict[str, Any]
) -> list[Any]:
    """A batch on an AUTOCOMMIT connection: no transaction, so no SAVEPOINT to undo it to. Each
    object is written as it is built, as factory_boy's own create_batch does."""
    made: list[Any] = []
    for index in range(number):
        try:
            made.append(factory_cls.create(*routed, **kwargs))
        except DBAPIError as exc:
            written = (
                f"objects 0 to {index - 1} are written and tracked (cleanup removes them)"
                if index
                else "nothing of it was written"
            )
            outcome = (
                f"The connection is AUTOCOMMIT, so there is no transaction to undo the batch "
                f"in: {written}. Roll the session back before using it again."
            )
            raise _batch_error(factory_cls, number, index, exc, outcome) from exc
    return made


def _failing_index(pending: list[Saved], sessions: list[Session]) -> int | None:
    """Which tree of a rolled-back batch fails: write the trees one by one in a SAVEPOINT that
    is rolled back afterwards (the error path only)."""
    savepoints = [s.begin_nested() for s in sessions]
    try:
        # Replaying rows whose keys collide (the very failure looked for) makes SQLAlchemy warn
        # about conflicting identities; the replay is rolled back, so the warning is noise.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SAWarning)
            return _first_failing(pending, sessions)
    finally:
        for savepoint in reversed(savepoints):
            savepoint.rollback()  # also ends a SAVEPOINT a failed flush deactivated


def _first_failing(pending: list[Saved], sessions: list[Session]) -> int | None:
    """The batch index of the first tree whose flush fails, or None."""
    for index in sorted({p.batch_index for p in pending}):
        try:
            for saved in (p for p in pending if p.batch_index == index):
                saved.session.add(saved.instance)
            for session in sessions:
                session.flush()
        except DBAPIError:
            return index
    return None


ROLLED_BACK = (
    "Nothing of the batch was written (rolled back to a SAVEPOINT), nothing of it is tracked, "
    "and the session is usable."
)


def _batch_error(
    factory_cls: Any,
    number: int,
    index: int | None,
    exc: DBAPIError,
    outcome: str = ROLLED_BACK,
) -> BatchError:
    """Name the factory, the failing object's batch index, the database's message and what
    became of the batch (``outcome``)."""
    at = f"object {index}" if index is not None else "an object"
    message = str(exc.orig).strip() if exc.orig is not None else str(exc)
    return BatchError(
        f"{factory_cls.__name__}.create_batch({number}): {at} failed to write: {message}. "
        f"{outcome} Fix: make that object's values valid (unique columns usually want a "
        "factory.Sequence).",
        factory=factory_cls,
        index=index,
    )


def plan_for(factory_cls: Any, *routed: Routed, **kwargs: Any) -> CallPlan:
    """``factory_cls.explain(...)``, for factories that declare a field named ``explain``."""
    plan = plan_call(factory_cls, factory_cls._meta.strategy, routed, kwargs)
    _decide_tenant(plan)
    return plan


def _decide_tenant(plan: CallPlan) -> None:
    """The call's one tenant decision; an enclosing build's tenant is its ambient default."""
    enclosing = current_tree()
    plan.tenant = decide(plan, enclosing.tenant if enclosing else None)


def _make_tenant(plan: CallPlan, path: tuple[str, ...], strategy: str) -> TenantRef:
    """Build or create the tree's new tenant at its place, with that place's own values."""
    node = plan.node_at(path)
    maker = node.factory.create if strategy == enums.CREATE_STRATEGY else node.factory.build
    return tenant_ref(maker(**plan.kwargs(None, node)))


STOCK_BASES.add(SQLAlchemyFactory)


class TenantOptions(DotmacOptions):
    """Adds ``tenant_field``, ``tenant_relationship`` and ``tenant_factory``."""

    def _default_options(self) -> list[OptionDefault]:
        return [
            *super()._default_options(),
            OptionDefault("tenant_field", "tenant_id", inherit=True),
            OptionDefault("tenant_relationship", None, inherit=True),
            OptionDefault("tenant_factory", None, inherit=True),
        ]


class TenantFactoryMeta(FactoryMeta):
    """Remembers tenant factories and gives them the DotMac ``Factory.tenant_id = ...`` default."""

    def __new__(mcs, class_name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        new_class = super().__new__(mcs, class_name, bases, attrs)
        if not new_class._meta.abstract and new_class._meta.model is not None:
            remember_tenant_factory(new_class)
        return new_class

    @property
    def tenant_id(cls) -> Any:
        """Factory-level default tenant (an id or instance); ``None`` when unset."""
        return getattr(cls, TENANT_DEFAULT, None)

    @tenant_id.setter
    def tenant_id(cls, value: Any) -> None:
        if value is not None:
            validated_tenant(value, f"{cls.__name__}.tenant_id")
        type.__setattr__(cls, TENANT_DEFAULT, value)

    def __setattr__(cls, name: str, value: Any) -> None:
        """``UserFactory.<tenant_field> = ...`` (``workspace_slug``) sets the default tenant too,
        like ``UserFactory.tenant_id = ...``: a tenant column of another name is not ignored."""
        meta = getattr(cls, "_meta", None)
        if meta is not None and name == getattr(meta, "tenant_field", None) and name != "tenant_id":
            type(cls).tenant_id.fset(cls, value)  # type: ignore[attr-defined]
            return
        super().__setattr__(name, value)

    def __getattr__(cls, name: str) -> Any:
        """``UserFactory.<tenant_field>`` reads the default tenant back."""
        meta = type.__getattribute__(cls, "_meta")
        if name == getattr(meta, "tenant_field", None):
            return getattr(cls, TENANT_DEFAULT, None)
        raise AttributeError(name)


class TenantIsolatedFactory(SQLAlchemyFactory[ModelT], metaclass=TenantFactoryMeta):
    """Base for tenant-scoped models: every object of a build tree shares one tenant."""

    _options_class = TenantOptions

    class Meta:
        abstract = True


STOCK_BASES.add(TenantIsolatedFactory)


def _batch_arguments(
    factory_cls: Any,
    size: int | Routed | None,
    count: int | None,
    routed: tuple[Routed, ...],
    kwargs: dict[str, Any],
) -> tuple[int, tuple[Routed, ...], dict[str, Any]]:
    """Accept factory_boy's ``size`` and DotMac's ``count``; positional customizations may follow.

    A model or factory with a field named ``count`` keeps factory_boy's meaning: ``count=`` is
    that field's value, never the batch size.
    """
    name = factory_cls.__name__
    if count is not None and takes_name(factory_cls, "count"):
        kwargs, count = {**kwargs, "count": count}, None
        alias = f" (count= is a field of {factory_cls._meta.model.__name__} here)"
    else:
        alias = ""
    if isinstance(size, (Customization, LinkOnly)):
        routed, size = (size, *routed), None
    for given in (size, count):
        if given is not None and (isinstance(given, bool) or not isinstance(given, int)):
            raise BatchSizeError(
                f"{name}: batch size must be a whole number >= 0, got {given!r} "
                f"({type(given).__name__}). Fix: pass an int, e.g. {name}.create_batch(3)."
            )
    if size is not None and count is not None:
        raise BatchSizeError(
            f"{name}: batch size given twice (size={size}, count={count}). Fix: pass one of them."
        )
    number = size if size is not None else count
    if number is None:
        raise BatchSizeError(f"{name}: batch needs a size{alias}. Fix: pass size=N.")
    if number < 0:
        raise BatchSizeError(f"{name}: batch size must be a whole number >= 0, got {number!r}.")
    return number, routed, kwargs
