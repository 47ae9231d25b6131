"""The one place a session is chosen: a held session (lint) > Meta session factory > Meta session >
the bound session.

Factories, tenancy, builders and cleanup all ask here, so a factory writes, links and looks up
rows through the same session whatever asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any

from sqlalchemy.orm import Session, scoped_session

from .context import set_for_block
from .errors import ConfigurationError


def check_sync(session: Any, where: str) -> None:
    """Refuse what cannot serve as a synchronous session, before anything uses it."""
    if session is None or isinstance(session, (Session, scoped_session)):
        return
    # By module, not isinstance: importing sqlalchemy.ext.asyncio needs greenlet installed.
    if any(c.__module__.startswith("sqlalchemy.ext.asyncio") for c in type(session).__mro__):
        raise ConfigurationError(
            f"{where}: got an AsyncSession; async sessions are not supported yet. Fix: bind a "
            "synchronous Session (for example `async_session.sync_session` inside run_sync, or "
            "a Session on a sync engine for the same database)."
        )
    raise ConfigurationError(
        f"{where}: {session!r} is not a SQLAlchemy Session. Fix: pass a "
        "sqlalchemy.orm.Session (or scoped_session)."
    )


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
    factory_fn = getattr(meta, "sqlalchemy_session_factory", None)
    if factory_fn is not None:
        made = factory_fn()
        check_sync(made, f"{factory_cls.__name__}.Meta.sqlalchemy_session_factory()")
        return actual(made)
    explicit = getattr(meta, "sqlalchemy_session", None)
    if explicit is not None:
        check_sync(explicit, f"{factory_cls.__name__}.Meta.sqlalchemy_session")
        return actual(explicit)
    registry: Any = getattr(meta, "registry", False)
    if registry is False:  # a plain factory_boy factory: no registry to ask
        return None
    bound = (registry.binding if registry is not None else DEFAULT_BINDING).session
    return None if bound is None else actual(bound)


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
