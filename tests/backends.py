"""Which databases the suite runs on: SQLite always, PostgreSQL and MariaDB when configured."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, event, text

from dotmac_factoryboy.engines import sqlite_savepoints

SERVER_URLS = {
    "postgresql": "DOTMAC_TEST_POSTGRES_URL",
    "mariadb": "DOTMAC_TEST_MARIADB_URL",
}
SERVERS_ONLY = os.environ.get("DOTMAC_TEST_SERVERS_ONLY", "") == "1"
"""CI's server run sets it: SQLite has run in the README command's step already."""
BACKENDS = [*([] if SERVERS_ONLY else ["sqlite"]), *SERVER_URLS]


def required() -> bool:
    """DOTMAC_REQUIRE_DATABASES=1 turns a missing or unreachable server into a failure."""
    return os.environ.get("DOTMAC_REQUIRE_DATABASES", "") == "1"


def unavailable(reason: str) -> None:
    if required():
        pytest.fail(f"{reason} (DOTMAC_REQUIRE_DATABASES=1)", pytrace=False)
    pytest.skip(reason)


def server_url(backend: str) -> str:
    """The configured URL of a server backend, or a skip (a failure when databases are required)."""
    variable = SERVER_URLS[backend]
    url = os.environ.get(variable)
    if not url:
        unavailable(f"{backend} not configured: set {variable} to run these tests on it")
    return str(url)


def make_engine(backend: str, tmp_dir: Path) -> Engine:
    """A live engine for ``backend`` or a skip (a failure when databases are required)."""
    if backend == "sqlite":
        engine = create_engine(f"sqlite:///{tmp_dir / f'{uuid.uuid4().hex}.db'}")
        sqlite_savepoints(engine)  # the package's pysqlite recipe: SAVEPOINTs work, FKs on

        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA journal_mode=WAL")  # readers never block the writer

        return engine
    variable = SERVER_URLS[backend]
    engine = create_engine(server_url(backend), pool_pre_ping=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        engine.dispose()
        unavailable(f"{backend} at {variable} is unreachable: {exc.__class__.__name__}: {exc}")
    return engine
