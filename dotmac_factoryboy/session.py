"""The one place a session is chosen: Meta session factory > Meta session > the bound session.

Factories, tenancy, builders and cleanup all ask here, so a factory writes, links and looks up
rows through the same session whatever asked.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session, scoped_session

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


def find_session(factory_cls: Any) -> Session | None:
    """The session ``factory_cls`` writes through, or ``None`` when it has none."""
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
    from .registry import registry as default_registry

    bound = (registry or default_registry).bound_session
    return None if bound is None else actual(bound)


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
