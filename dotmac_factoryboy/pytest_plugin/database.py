"""The plugin's test database: which URL, and a database it creates, owns and drops.

Like pytest-django and pytest-postgresql, on a server URL the plugin works in a database of its
own, ``test_<name>`` (``test_<name>_gw0`` per xdist worker), creates the schema there from the
configured metadata, and drops it at the end. ``--factory-reuse-db`` keeps it between runs and
recreates the schema only when the metadata changed; ``--factory-db-as-is`` uses the URL exactly
as given (your own database and migrations) and creates and drops nothing. A database is dropped
only if it carries the plugin's marker table, so the plugin never drops one it did not create.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import (
    URL,
    Column,
    Engine,
    MetaData,
    String,
    Table,
    create_engine,
    inspect,
    make_url,
    select,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.schema import CreateTable

from ..engines import async_url, is_async_url, sync_url
from ..errors import ConfigurationError

URL_VARIABLE = "DOTMAC_FACTORY_DB_URL"
PRIVATE_SQLITE = "sqlite (a file private to the run)"
MARKER = "dotmac_factoryboy_test_database"
"""The table that marks a database the plugin created, holding its schema fingerprint."""


def db_url(config: pytest.Config) -> str:
    """Option > environment > ini (pytest-django's order), else a private SQLite file."""
    url: str | None = (
        config.getoption("factory_db_url")
        or os.environ.get(URL_VARIABLE)
        or str(config.getini("factory_db_url") or "")
    )
    return url or PRIVATE_SQLITE


def shown_url(config: pytest.Config) -> str:
    """The URL for the report header, password hidden."""
    url = db_url(config)
    if url == PRIVATE_SQLITE:
        return url
    return make_url(url).render_as_string(hide_password=True)


def fingerprint(engine: Engine, metadatas: Sequence[MetaData]) -> str:
    """A hash of the schema's DDL on this dialect: it changes when a model gains a column."""
    ddl = [
        str(CreateTable(table).compile(dialect=engine.dialect))
        for metadata in metadatas
        for table in metadata.sorted_tables
    ]
    return hashlib.sha256("\n".join(ddl).encode()).hexdigest()


_marker_metadata = MetaData()
_marker = Table(MARKER, _marker_metadata, Column("fingerprint", String(64), primary_key=True))


@dataclass
class TestDatabase:
    """The database one run (or one xdist worker) works in, and how to end it."""

    url: str
    created: URL | None = None
    admin: Engine | None = None
    async_driver: str | None = None
    """The driver of a configured async URL (``postgresql+asyncpg``), kept for the async engine."""

    @classmethod
    def open(
        cls,
        config: pytest.Config,
        metadatas: Sequence[MetaData],
        tmp_dir: Path,
    ) -> TestDatabase:
        configured = db_url(config)
        if configured == PRIVATE_SQLITE:
            return cls(f"sqlite:///{tmp_dir / 'dotmac_factoryboy.db'}")
        given = make_url(configured)
        driver = given.drivername if is_async_url(given) else None
        base = sync_url(given)  # databases and schemas are made with a sync driver
        url = base.render_as_string(hide_password=False)
        as_is = config.getoption("factory_db_as_is") or not ini_flag(config, "factory_create_db")
        if as_is or base.get_backend_name() == "sqlite":
            return cls(url, async_driver=driver)
        worker = os.environ.get("PYTEST_XDIST_WORKER")
        name = f"test_{base.database}" + (f"_{worker}" if worker else "")
        database = cls(
            url,
            base.set(database=name),
            create_engine(base, isolation_level="AUTOCOMMIT"),
            async_driver=driver,
        )
        database.url = database.created.render_as_string(hide_password=False)  # type: ignore[union-attr]
        database._prepare(metadatas, reuse=bool(config.getoption("factory_reuse_db")))
        return database

    def async_url(self) -> URL:
        """The test database through an async driver: the configured one, else the first
        installed (asyncpg or psycopg, asyncmy or aiomysql, aiosqlite)."""
        url = make_url(self.url)
        return url.set(drivername=self.async_driver) if self.async_driver else async_url(url)

    def _prepare(self, metadatas: Sequence[MetaData], *, reuse: bool) -> None:
        assert self.created is not None
        ours = self._ours()
        exists = ours is not None
        if ours is False:
            raise ConfigurationError(
                f"Database {self.created.database!r} exists and was not created by "
                "dotmac-factoryboy (no marker table), so it is left alone. Fix: drop it yourself, "
                "point --factory-db-url at another name, or use --factory-db-as-is to run in a "
                "database you manage."
            )
        if exists and not reuse:
            self._run("DROP DATABASE {}")
            exists = False
        if not exists:
            self._run("CREATE DATABASE {}")
        engine = create_engine(self.url)
        try:
            wanted = fingerprint(engine, metadatas)
            with engine.begin() as connection:
                _marker_metadata.create_all(connection)
                stored = connection.execute(select(_marker.c.fingerprint)).scalar()
                if stored != wanted:
                    for metadata in metadatas:
                        metadata.drop_all(connection)
                        metadata.create_all(connection)
                    connection.execute(_marker.delete())
                    connection.execute(_marker.insert().values(fingerprint=wanted))
        finally:
            engine.dispose()

    def _ours(self) -> bool | None:
        """``None`` when the database does not exist; else whether it has the marker table."""
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                return bool(inspect(connection).has_table(MARKER))
        except OperationalError:
            return None  # cannot connect: it does not exist (yet)
        finally:
            engine.dispose()

    def _run(self, statement: str) -> None:
        assert self.admin is not None and self.created is not None
        quoted = self.admin.dialect.identifier_preparer.quote(str(self.created.database))
        force = (
            " WITH (FORCE)"
            if "DROP" in statement and self.admin.dialect.name == "postgresql"
            else ""
        )
        with self.admin.connect() as connection:
            connection.exec_driver_sql(statement.format(quoted) + force)

    def close(self, *, keep: bool) -> None:
        """Drop the database the plugin created, unless it is kept for reuse."""
        if self.admin is None:
            return
        if not keep and self._ours() is True:
            self._run("DROP DATABASE IF EXISTS {}")
        self.admin.dispose()


def ini_flag(config: pytest.Config, name: str) -> bool:
    """An ini setting read as a switch: anything but 0, false, no or off is on."""
    value = str(config.getini(name)).strip().lower()
    return value not in ("0", "false", "no", "off")
