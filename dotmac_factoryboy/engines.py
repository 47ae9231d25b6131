"""Engines as the package's own tools open them: connected once (an unreachable database is a
one-line error), and on SQLite with transactions that make SAVEPOINTs and parallel writers work."""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from .errors import TargetError, first_line


def sqlite_savepoints(engine: Engine, begin: str = "BEGIN") -> None:
    """SQLAlchemy's pysqlite recipe: emit ``begin`` ourselves so SAVEPOINTs behave; FKs on.

    ``BEGIN IMMEDIATE`` takes the write lock up front, so concurrent writers wait for each other
    (up to the busy timeout) instead of failing with "database is locked".
    """

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


@cache
def engine_for(url: str) -> Engine:
    """One connected engine per URL and process; failure is a ``TargetError`` naming ``--url``."""
    try:
        if make_url(url).get_backend_name() == "sqlite":
            engine = create_engine(url, connect_args={"timeout": 600})
            sqlite_savepoints(engine, "BEGIN IMMEDIATE")
        else:
            engine = create_engine(url)
        with engine.connect():
            pass
    except (ArgumentError, NoSuchModuleError, OperationalError, ImportError) as exc:
        reason = first_line(getattr(exc, "orig", None) or exc)
        raise TargetError(f"--url {safe_url(url)}: cannot connect ({reason}).") from exc
    return engine


def safe_url(url: str | Engine) -> str:
    """The URL with its password hidden (an unparsable one as given)."""
    try:
        parsed = url.url if isinstance(url, Engine) else make_url(url)
    except ArgumentError:
        return str(url)
    return parsed.render_as_string(hide_password=True)


def in_memory(url: str) -> bool:
    """True for an in-memory SQLite URL (each process would see its own empty database)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return False
    return parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")


# Which driver each backend uses, sync and async, in order of preference: the first installed one.
_SYNC_DRIVERS = {"postgresql": ("psycopg", "psycopg2"), "mysql": ("pymysql", "mysqldb")}
_ASYNC_DRIVERS = {
    "sqlite": ("aiosqlite",),
    "postgresql": ("asyncpg", "psycopg"),
    "mysql": ("asyncmy", "aiomysql"),
}
_MODULES = {"mysqldb": "MySQLdb"}


def is_async_url(url: str | URL) -> bool:
    """Whether ``url`` names an async driver (``postgresql+asyncpg``, ``sqlite+aiosqlite``...)."""
    return bool(make_url(url).get_dialect().is_async)


def sync_url(url: str | URL) -> URL:
    """``url`` with a sync driver of its backend (itself when it already has one): the plugin
    creates databases and schemas with it, whichever driver the tests use."""
    parsed = make_url(url)
    if not is_async_url(parsed):
        return parsed
    backend = parsed.get_backend_name()
    drivers = _SYNC_DRIVERS.get("mysql" if backend == "mariadb" else backend, ())
    driver = next((d for d in drivers if _installed(d)), None)
    return parsed.set(drivername=backend if driver is None else f"{backend}+{driver}")


def async_url(url: str | URL) -> URL:
    """``url`` with an async driver of its backend (itself when it already has one); a
    ``TargetError`` naming what to install when none is."""
    parsed = make_url(url)
    if is_async_url(parsed):
        return parsed
    backend = parsed.get_backend_name()
    drivers = _ASYNC_DRIVERS.get("mysql" if backend == "mariadb" else backend, ())
    driver = next((d for d in drivers if _installed(d)), None)
    if driver is None:
        raise TargetError(
            f"{safe_url(str(parsed))}: no async driver for {backend} is installed. Fix: "
            f"pip install {' or '.join(drivers) or 'an async driver'}, or configure an async URL."
        )
    return parsed.set(drivername=f"{backend}+{driver}")


def _installed(driver: str) -> bool:
    return importlib.util.find_spec(_MODULES.get(driver, driver)) is not None
