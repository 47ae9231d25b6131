"""The one place a session is chosen: a held session (lint) > Meta session factory > Meta session >
the bound session. An AsyncSession is written through only inside its own ``run_sync`` (the
``*_async`` calls), where its ``sync_session`` stands in for it.

Factories, tenancy, builders and cleanup all ask here, so a factory writes, links and looks up
rows through the same session whatever asked.
"""

from __future__ import annotations

import inspect as pyinspect
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy.exc import PendingRollbackError
from sqlalchemy.orm import Session, scoped_session

from .context import set_for_block
from .errors import ConfigurationError


def is_async(session: Any) -> bool:
    """Whether ``session`` is an ``AsyncSession`` (or an ``async_scoped_session``)."""
    # By module, not isinstance: importing sqlalchemy.ext.asyncio needs greenlet installed.
    return any(c.__module__.startswith("sqlalchemy.ext.asyncio") for c in type(session).__mro__)


def check_sync(session: Any, where: str) -> None:
    """Refuse what cannot serve as a session (sync, or async for the ``*_async`` calls)."""
    if session is None or isinstance(session, (Session, scoped_session)) or is_async(session):
        return
    raise ConfigurationError(
        f"{where}: {session!r} is not a SQLAlchemy Session. Fix: pass a "
        "sqlalchemy.orm.Session (or scoped_session), or an AsyncSession for create_async()."
    )


_BRIDGED: ContextVar[Any] = ContextVar("dotmac_bridged_session", default=None)
"""The AsyncSession whose ``run_sync`` runs the current ``*_async`` call, if any."""


def bridged(session: Any) -> AbstractContextManager[None]:
    """Inside ``session.run_sync``: factories resolving to ``session`` write through its
    ``sync_session`` (SQLAlchemy's own bridge runs the whole sync pipeline in its greenlet)."""
    return set_for_block(_BRIDGED, session)


def _usable(session: Any, where: str, factory_cls: Any) -> Session:
    """A resolved session as the Session to write through; an AsyncSession only inside its own
    bridged call."""
    if isinstance(session, (Session, scoped_session)):  # the common case, checked first
        return actual(session)
    if not is_async(session):
        check_sync(session, where)  # raises: not a session at all
    bridge = _BRIDGED.get()
    if bridge is not None and async_actual(session) is bridge:
        return bridge.sync_session  # type: ignore[no-any-return]
    name = factory_cls.__name__
    raise ConfigurationError(
        f"{where}: is an AsyncSession, which sync code cannot write through. Fix: await "
        f"{name}.create_async(...) (or create_batch_async), or bind a synchronous Session."
    )


def async_actual(session: Any) -> Any:
    """The AsyncSession behind an ``async_scoped_session``, else ``session`` itself."""
    from sqlalchemy.ext.asyncio import async_scoped_session

    return session() if isinstance(session, async_scoped_session) else session


async def async_session_of(factory_cls: Any) -> Any:
    """The AsyncSession ``factory_cls`` writes through (an async session factory is awaited),
    or ``None`` when it resolves to a sync session or none."""
    meta = factory_cls._meta
    factory_fn = getattr(meta, "sqlalchemy_session_factory", None)
    found: Any
    if factory_fn is not None:
        found = factory_fn()
        if pyinspect.isawaitable(found):
            found = await found
    else:
        found = getattr(meta, "sqlalchemy_session", None)
    if found is None:
        found = _bound(meta)
    return async_actual(found) if found is not None and is_async(found) else None


def _bound(meta: Any) -> Any:
    """The session bound for a factory's registry (its Meta's, else the default one); ``None``
    for a plain factory_boy factory, which has no registry to ask."""
    registry: Any = getattr(meta, "registry", False)
    if registry is False:
        return None
    return (registry.binding if registry is not None else DEFAULT_BINDING).session


_HELD: ContextVar[Session | None] = ContextVar("dotmac_held_session", default=None)


def held_session() -> Session | None:
    """The session every factory writes through inside ``writes_held_in``, if any."""
    return _HELD.get()


def writes_held_in(session: Session) -> AbstractContextManager[None]:
    """For the block, every factory writes through ``session`` whatever its Meta names, and
    commit persistence only flushes: ``lint`` rolls all of it back, so nothing is left anywhere."""
    return set_for_block(_HELD, session)


def find_session(factory_cls: Any) -> Session | None:
    """The session ``factory_cls`` writes through, or ``None`` when it has none."""
    held = _HELD.get()
    if held is not None:
        return held
    meta = factory_cls._meta
    name = factory_cls.__name__
    factory_fn = getattr(meta, "sqlalchemy_session_factory", None)
    if factory_fn is not None:
        where = f"{name}.Meta.sqlalchemy_session_factory()"
        if pyinspect.iscoroutinefunction(factory_fn):  # awaited once by the *_async call
            bridge = _BRIDGED.get()
            if bridge is None:
                raise ConfigurationError(
                    f"{where} is async, so sync code cannot call it. Fix: await "
                    f"{name}.create_async(...) (or create_batch_async)."
                )
            return bridge.sync_session  # type: ignore[no-any-return]
        return _usable(factory_fn(), where, factory_cls)
    explicit = getattr(meta, "sqlalchemy_session", None)
    if explicit is not None:
        return _usable(explicit, f"{name}.Meta.sqlalchemy_session", factory_cls)
    bound = _bound(meta)
    return None if bound is None else _usable(bound, "the bound session", factory_cls)


class Binding:
    """The session bound for a registry's factories in the current context (thread, task), and
    the lazy provider that binds one on first use (the pytest plugin's)."""

    def __init__(self, name: str) -> None:
        self._session: ContextVar[Session | scoped_session[Session] | None] = ContextVar(
            f"dotmac_session_{name}", default=None
        )
        self._provider: ContextVar[Callable[[], object] | None] = ContextVar(
            f"dotmac_provider_{name}", default=None
        )

    @property
    def session(self) -> Session | scoped_session[Session] | None:
        """The bound session; if none, the one a lazy provider binds (asked once)."""
        session = self._session.get()
        provider = self._provider.get()
        if session is None and provider is not None:
            with set_for_block(self._provider, None):  # asked once, never re-entered
                provider()
            session = self._session.get()
        return session

    def bind(self, session: Session | scoped_session[Session] | None) -> None:
        """Bind ``session`` in this context."""
        check_sync(session, "registry.bind()")
        self._session.set(session)

    @contextmanager
    def bound(
        self, session: Session | scoped_session[Session]
    ) -> Iterator[Session | scoped_session[Session]]:
        """Bind ``session`` for the duration of the block."""
        check_sync(session, "registry.bound()")
        with set_for_block(self._session, session):
            yield session

    @contextmanager
    def bound_lazily(self, provider: Callable[[], object]) -> Iterator[None]:
        """Call ``provider`` (which must bind a session) the first time one is needed."""
        with set_for_block(self._provider, provider):
            yield


DEFAULT_BINDING = Binding("default")
"""The default registry's binding (factories whose Meta names no registry use it)."""


def session_for(factory_cls: Any) -> Session:
    """The session ``factory_cls`` writes through; ``ConfigurationError`` naming the fix if none."""
    session = find_session(factory_cls)
    if session is None:
        name = factory_cls.__name__
        raise ConfigurationError(
            f"{name}.create() has no SQLAlchemy session. Fix: set {name}.Meta.sqlalchemy_session "
            "(or sqlalchemy_session_factory), or bind one for every factory with "
            "registry.bind(session) / `with registry.bound(session):`. build() and stub() need "
            "no session."
        )
    return session


def autocommits(session: Session) -> bool:
    """Whether ``session`` writes on an AUTOCOMMIT connection (no transaction, so no SAVEPOINT).

    The execution option is public; ``create_engine(isolation_level="AUTOCOMMIT")`` is kept only
    in the dialect's private ``_on_connect_isolation_level`` (SQLAlchemy's own
    ``Connection._is_autocommit_isolation`` reads the same two).
    """
    connection = session.connection()
    level = connection.get_execution_options().get("isolation_level")
    if level is None:
        level = getattr(connection.dialect, "_on_connect_isolation_level", None)
    return bool(level == "AUTOCOMMIT")


def bound_session(registry: Any) -> Session | None:
    """The session bound to ``registry`` in this context, if any."""
    bound = registry.bound_session
    return None if bound is None else actual(bound)


def row_session(instance: Any, registry: Any) -> Session | None:
    """The session that holds a row, else the registry's bound session."""
    from sqlalchemy import inspect as sa_inspect

    return sa_inspect(instance).session or bound_session(registry)


def actual(session: Session | scoped_session[Session]) -> Session:
    """The Session behind a ``scoped_session`` (the object rows report as their session)."""
    if isinstance(session, scoped_session):
        return session()
    return session


def recover(session: Session) -> None:
    """After a cancellation (or another exit exception) mid-statement, SQLAlchemy invalidates the
    connection, and the database discards its transaction: roll the session back so the next call
    can use it (a live session is left alone)."""
    try:
        invalid = session.in_transaction() and session.connection().invalidated
    except PendingRollbackError:
        invalid = True
    if invalid:
        session.rollback()
