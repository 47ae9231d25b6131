"""FactoryRegistry: factories by name or model, the bound session, and the tracking scopes that
let cleanup delete exactly the rows the factories created."""

from __future__ import annotations

import difflib
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import inspect as sa_inspect

from .cleanup import BlockedRow, CleanupReport, delete_instances
from .context import set_for_block
from .errors import CleanupError, ConfigurationError, FactoryNotFoundError, RelationshipError
from .relationships import RELATIONSHIP_TYPES, RelationshipDefinition
from .session import DEFAULT_BINDING, Binding, async_actual, is_async

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, scoped_session

FactoryClass = Any
"""A factory class (typed loosely: the registry never builds anything itself)."""
CleanupHandler = Callable[[], object]


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def factory_name_for(model: type[Any]) -> str:
    """``BillingAccount`` -> ``billing_account_factory``: the name a model's main factory takes."""
    return f"{_snake(model.__name__)}_factory"


def factory_name_of(factory_cls: Any) -> str:
    """``AdminUserFactory`` -> ``admin_user_factory``: the name any other factory takes."""
    return f"{_snake(factory_cls.__name__.removesuffix('Factory'))}_factory"


class TrackedRow(NamedTuple):
    """One instance a factory created, with the factory and the session that wrote it (a named
    tuple: one is made per created row)."""

    instance: Any
    factory: FactoryClass
    session: Session


@dataclass(eq=False)
class TrackingScope:
    """Rows and cleanup handlers recorded since the scope opened."""

    parent: TrackingScope | None = None
    rows: list[TrackedRow] = field(default_factory=list)
    handlers: list[tuple[FactoryClass | None, CleanupHandler]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FactoryRegistry:
    """Finds factories, binds a session for them, tracks what they create and cleans it up."""

    def __init__(self, *, binding: Binding | None = None) -> None:
        self._factories: dict[str, FactoryClass] = {}
        self._root = TrackingScope()
        self._scope: ContextVar[TrackingScope] = ContextVar(f"dotmac_scope_{id(self)}")
        self.binding = binding or Binding(str(id(self)))
        """Where this registry's bound session lives (``session`` chooses sessions from it)."""
        self._relationships: dict[str, RelationshipDefinition] = {}

    # -- factories --------------------------------------------------------------------------

    @property
    def factories(self) -> Mapping[str, FactoryClass]:
        """Read-only view of name -> factory."""
        return MappingProxyType(self._factories)

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._factories)

    def register_factory(self, factory_cls: FactoryClass, name: str | None = None) -> str:
        """Register ``factory_cls`` under ``name`` (default: from its model); returns the name."""
        key = name or factory_name_for(factory_cls._meta.model)
        self._factories[key] = factory_cls
        return key

    def auto_register(self, factory_cls: FactoryClass) -> None:
        """Register a newly defined factory; defining one never fails because another exists.

        The factory named ``<Model>Factory`` (else the first one defined) takes the model's name
        (``user_factory``) and answers lookups by model; any other takes a name from its class
        (``AdminUserFactory`` -> ``admin_user_factory``). The same class defined again (its module
        imported anew) replaces itself. Only two different factories deriving one name is an
        error.
        """
        model_key = factory_name_for(factory_cls._meta.model)
        own_key = factory_name_of(factory_cls)
        for key, existing in list(self._factories.items()):
            if _where(existing) == _where(factory_cls):  # re-imported: replace in place
                self._factories[key] = factory_cls
                return
        holder = self._factories.get(model_key)
        if holder is None:
            self._factories[model_key] = factory_cls
            return
        if own_key == model_key and factory_name_of(holder) != model_key:
            self._factories[model_key] = factory_cls  # the <Model>Factory takes the model's name
            self._add(factory_name_of(holder), holder)
            return
        self._add(own_key, factory_cls)

    def _add(self, key: str, factory_cls: FactoryClass) -> None:
        existing = self._factories.get(key)
        if existing is not None and existing is not factory_cls:
            raise ConfigurationError(
                f"Two factories take the name {key!r} in one registry: {_where(existing)} and "
                f"{_where(factory_cls)}. Fix: rename one of the classes, set Meta.register = "
                "False on one and register it by hand with registry.register_factory(Factory, "
                "'other_name'), or give it a registry of its own (Meta.registry = "
                "FactoryRegistry())."
            )
        self._factories[key] = factory_cls

    def get_factory(self, name: str) -> FactoryClass:
        """The factory registered as ``name``."""
        try:
            return self._factories[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise FactoryNotFoundError(
                f"No factory named {name!r}.{hint} Registered: {', '.join(self.names()) or 'none'}."
                " Fix: define a factory for the model (it registers itself) or call "
                "registry.register_factory(FactoryClass, name)."
            ) from None

    def factory_for(self, model: type[Any]) -> FactoryClass:
        """The factory that answers for ``model``: the one under the model's name, else the only
        one building it."""
        preferred = self._factories.get(factory_name_for(model))
        if preferred is not None and preferred._meta.model is model:
            return preferred
        found = [(k, f) for k, f in self._factories.items() if f._meta.model is model]
        if len(found) == 1:
            return found[0][1]
        if found:
            names = ", ".join(f"{k} ({_where(f)})" for k, f in found)
            raise ConfigurationError(
                f"Several factories build {model.__name__} and none is registered under "
                f"{factory_name_for(model)!r}: {names}. Fix: name the one to use with "
                "Meta.tenant_factory (for a tenant) or register it as "
                f"{factory_name_for(model)!r}."
            )
        raise FactoryNotFoundError(
            f"No factory registered for model {model.__name__}. Registered: "
            f"{', '.join(self.names()) or 'none'}. Fix: define a factory with "
            f"Meta.model = {model.__name__}, or register one."
        )

    def create_instance(self, factory_name: str, /, *routed: Any, **kwargs: Any) -> Any:
        """Create through the factory registered as ``factory_name`` (every keyword, ``name``
        included, goes to the model)."""
        return self.get_factory(factory_name).create(*routed, **kwargs)

    # -- relationships ----------------------------------------------------------------------

    @property
    def relationships(self) -> Mapping[str, RelationshipDefinition]:
        """Read-only view of name -> relationship definition."""
        return MappingProxyType(self._relationships)

    def register_relationship(self, definition: RelationshipDefinition) -> None:
        """Register a relationship; ``RelationshipError`` if it does not fit the factories."""
        validate_definition(definition, self)
        self._relationships[definition.name] = definition

    def get_relationship(self, name: str) -> RelationshipDefinition:
        """The relationship registered as ``name``."""
        try:
            return self._relationships[name]
        except KeyError:
            raise RelationshipError(
                f"No relationship named {name!r}. Registered: "
                f"{', '.join(sorted(self._relationships)) or 'none'}. Fix: "
                "registry.register_relationship(RelationshipDefinition(...)) first."
            ) from None

    # -- session binding --------------------------------------------------------------------

    @property
    def bound_session(self) -> Session | scoped_session[Session] | None:
        """The session bound in the current context; if none, the one a lazy provider binds."""
        return self.binding.session

    def bound_lazily(self, provider: Callable[[], object]) -> AbstractContextManager[None]:
        """Call ``provider`` (which must bind a session) the first time a factory needs one in
        the block: the pytest plugin binds a test's session only when the test uses a factory."""
        return self.binding.bound_lazily(provider)

    def bind(self, session: Session | None) -> None:
        """Supply ``session`` to every factory of this registry that sets none (this context only)."""
        self.binding.bind(session)

    @contextmanager
    def bound(self, session: Session) -> Iterator[Session]:
        """Bind ``session`` for the duration of the block."""
        with self.binding.bound(session):
            yield session

    # -- tracking ---------------------------------------------------------------------------

    @property
    def current_scope(self) -> TrackingScope:
        """The innermost tracking scope of the current context."""
        return self._scope.get(self._root)

    @contextmanager
    def scope(self, *, cleanup: bool = False) -> Iterator[TrackingScope]:
        """Open a nested tracking scope; on exit, clean it up or hand its rows to the parent."""
        outer = self.current_scope
        inner = TrackingScope(parent=outer)
        try:
            with set_for_block(self._scope, inner):
                yield inner
        finally:
            try:
                if cleanup:
                    self._cleanup(inner, None)
            finally:  # what is left (blocked rows) stays tracked, so a later cleanup retries it
                with outer.lock:
                    outer.rows.extend(inner.rows)
                    outer.handlers.extend(inner.handlers)

    def within(self, scope: TrackingScope) -> AbstractContextManager[None]:
        """Make ``scope`` current again for a block: an async fixture's teardown, which may run
        in another task than the test, cleans up the test's own scope."""
        return set_for_block(self._scope, scope)

    def track(self, instance: Any, factory_cls: FactoryClass, session: Session) -> None:
        """Record a row a factory created."""
        scope = self.current_scope
        with scope.lock:
            scope.rows.append(TrackedRow(instance, factory_cls, session))

    def track_many(self, rows: Iterable[TrackedRow]) -> None:
        """Record rows the factories created, in order (one batch's)."""
        scope = self.current_scope
        with scope.lock:
            scope.rows.extend(rows)

    @property
    def instances(self) -> list[Any]:
        """Instances tracked in the current scope, in creation order."""
        return [row.instance for row in self.current_scope.rows]

    def instances_of(self, factory_cls: FactoryClass) -> list[Any]:
        """Instances ``factory_cls`` (or a subclass of it) created in the current scope."""
        return [r.instance for r in self.current_scope.rows if issubclass(r.factory, factory_cls)]

    def add_cleanup_handler(
        self, handler: CleanupHandler, factory_cls: FactoryClass | None = None
    ) -> None:
        """Run ``handler`` after the deletes of the next cleanup (last added runs first)."""
        scope = self.current_scope
        with scope.lock:
            scope.handlers.append((factory_cls, handler))

    # -- cleanup ----------------------------------------------------------------------------

    def cleanup_all(self, *, include_dependents: bool = False) -> CleanupReport:
        """Delete every tracked row of the current scope, children first, then run handlers.

        Association rows linking only rows being deleted go with them. ``include_dependents``
        also deletes untracked rows that reference only rows being deleted (an order the app
        made for a factory-made customer); the report lists them.
        """
        return self._cleanup(self.current_scope, None, include_dependents=include_dependents)

    async def cleanup_all_async(self, *, include_dependents: bool = False) -> CleanupReport:
        """``cleanup_all()`` for rows written through AsyncSessions: the whole cleanup, handlers
        included, runs inside one AsyncSession's ``run_sync`` (SQLAlchemy's greenlet bridge
        serves every AsyncSession of the loop there), so a handler may use the session too."""
        from sqlalchemy.ext.asyncio import async_session

        scope = self.current_scope
        with scope.lock:
            sessions = _unique(r.session for r in scope.rows)
        bridges = [p for p in map(async_session, sessions) if p is not None]
        bound = self.binding.session
        if not bridges and bound is not None and is_async(bound):
            bridges = [async_actual(bound)]

        def everything(_sync: Session | None = None) -> CleanupReport:
            return self._cleanup(scope, None, include_dependents=include_dependents)

        return await bridges[0].run_sync(everything) if bridges else everything()

    def cleanup_factory(
        self, factory_cls: FactoryClass, *, include_dependents: bool = False
    ) -> CleanupReport:
        """Delete the rows ``factory_cls`` created in the current scope, then its handlers."""
        return self._cleanup(self.current_scope, factory_cls, include_dependents=include_dependents)

    def cleanup_instances(self, instances: list[Any]) -> CleanupReport:
        """Delete these tracked instances (children first); untracked ones are ignored."""
        wanted = {id(i) for i in instances}
        return self._cleanup(self.current_scope, None, lambda row: id(row.instance) in wanted)

    def forget(self, scope: TrackingScope) -> None:
        """Drop a scope's records without deleting (its rows were rolled back)."""
        with scope.lock:
            scope.rows.clear()
            scope.handlers.clear()

    def _cleanup(
        self,
        scope: TrackingScope,
        factory_cls: FactoryClass | None,
        row_filter: Callable[[TrackedRow], bool] | None = None,
        *,
        include_dependents: bool = False,
    ) -> CleanupReport:
        def selected(owner: FactoryClass | None) -> bool:
            return factory_cls is None or (owner is not None and issubclass(owner, factory_cls))

        with scope.lock:
            rows = [
                r
                for r in scope.rows
                if selected(r.factory) and (row_filter is None or row_filter(r))
            ]
            handlers = [h for h in scope.handlers if selected(h[0]) and row_filter is None]
            scope.handlers = [h for h in scope.handlers if h not in handlers]
        report = CleanupReport()
        done: set[int] = set()
        errors: list[BaseException] = []
        try:
            for session in _unique(r.session for r in rows):
                mine = [r.instance for r in rows if r.session is session]
                try:
                    deleted, found = delete_instances(
                        session, mine, include_dependents=include_dependents
                    )
                except CleanupError as exc:
                    errors.append(exc)
                    continue
                done.update(id(i) for i in deleted)
                report.merge(found)
        finally:
            with scope.lock:
                scope.rows = [r for r in scope.rows if id(r.instance) not in done]
        blocked: list[BlockedRow] = report.blocked
        for _, handler in reversed(handlers):
            try:
                handler()
            except Exception as exc:
                errors.append(exc)
        if blocked or errors:
            with scope.lock:
                others = [r for r in scope.rows if not selected(r.factory)]
            enclosing = scope.parent
            while enclosing is not None:  # rows of enclosing scopes are not part of it either
                with enclosing.lock:
                    others.extend(enclosing.rows)
                enclosing = enclosing.parent
            message = _cleanup_message(blocked, errors, _creators_by_table(others))
            raise CleanupError(message, blocked=blocked, errors=errors)
        return report


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


def _where(factory_cls: FactoryClass) -> str:
    return f"{factory_cls.__module__}.{factory_cls.__qualname__}"


def _unique(sessions: Iterator[Session]) -> list[Session]:
    seen: dict[int, Session] = {}
    for session in sessions:
        seen.setdefault(id(session), session)
    return list(seen.values())


def _creators_by_table(rows: Iterable[TrackedRow]) -> dict[str, set[str]]:
    """Table name -> names of the factories whose tracked rows (still there) live in it."""
    found: dict[str, set[str]] = {}
    for row in rows:
        table = getattr(sa_inspect(type(row.instance)), "local_table", None)
        if table is not None:
            found.setdefault(str(table.name), set()).add(row.factory.__name__)
    return found


def _cleanup_message(
    blocked: list[BlockedRow], errors: list[BaseException], others: dict[str, set[str]]
) -> str:
    lines = []
    if blocked:
        lines.append(
            f"{len(blocked)} tracked row(s) were left because other rows still reference them "
            "(everything else was deleted). Fix: delete or re-point the referencing rows (or "
            "clean up the factories that created them first, or call cleanup_all()), then clean "
            "up again:"
        )
        for b in blocked:
            makers = others.get(b.referenced_by)
            whose = b.why or (
                f"rows {', '.join(sorted(makers))} created, not part of this cleanup"
                if makers
                else "rows the factories did not create"
            )
            lines.append(
                f"  {b.table} {b.primary_key!r} is referenced from {b.referenced_by} ({whose})"
            )
    if errors:
        lines.append(f"{len(errors)} cleanup step(s) or handler(s) raised:")
        lines.extend(f"  {type(e).__name__}: {e}" for e in errors)
    return "\n".join(lines)


registry = FactoryRegistry(binding=DEFAULT_BINDING)
"""The default registry every factory registers in unless its ``Meta.registry`` says otherwise."""
