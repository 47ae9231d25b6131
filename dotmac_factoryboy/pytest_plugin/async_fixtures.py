"""The async fixtures: the run's test database through an async driver, and an ``AsyncSession``
with ``db_session``'s isolation that every factory's ``*_async`` call writes through.

The session is bound on first use, in the test's own task (an async fixture's context does not
reach the test under every runner), and in cleanup mode the test's rows are deleted by awaiting
``cleanup_all_async()`` in the fixture's teardown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.pool import NullPool

from ..engines import sqlite_savepoints
from ..errors import CleanupError
from ..registry import TrackingScope, registry
from .database import TestDatabase

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

DATABASE = pytest.StashKey[TestDatabase]()
ASYNC_BOUND = pytest.StashKey[Any]()
"""The test's ``async_db_session``: what the lazy binding binds in the test's event loop."""
TEST_SCOPE = pytest.StashKey[TrackingScope]()


def async_fixture(func: Callable[..., Any]) -> Any:
    """pytest-asyncio's fixture decorator when it is installed (its strict mode runs only the
    async fixtures it marked; anyio's plugin runs those too), else pytest's (anyio's plugin runs
    every async fixture of an anyio test)."""
    try:
        import pytest_asyncio
    except ImportError:
        return pytest.fixture(func)
    return pytest_asyncio.fixture(func)


def isolation_is_cleanup(request: pytest.FixtureRequest) -> bool:
    return bool(request.node.get_closest_marker("factory_cleanup")) or (
        request.config.getini("factory_isolation") == "cleanup"
    )


@pytest.fixture(scope="session")
def factory_async_engine(request: pytest.FixtureRequest, factory_engine: Engine) -> AsyncEngine:
    """The run's test database through an async driver: the configured URL's own, else the first
    installed (asyncpg or psycopg, asyncmy or aiomysql, aiosqlite).

    No pool: a connection belongs to the event loop that opened it, and each test may run in a
    loop of its own.
    """
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(request.config.stash[DATABASE].async_url(), poolclass=NullPool)
    if engine.dialect.name == "sqlite":
        sqlite_savepoints(engine.sync_engine)
    return engine


@async_fixture
async def factory_async_session(
    request: pytest.FixtureRequest, factory_async_engine: AsyncEngine
) -> AsyncIterator[AsyncSession]:
    """The AsyncSession the factories write through in an async test; override it to hand them
    your application's. ``expire_on_commit=False``: after a commit, attributes stay readable
    without an implicit (and, under asyncio, impossible) lazy load.

    Rollback mode (default): an outer transaction with SAVEPOINTs, so even ``commit()`` leaves
    nothing behind. Cleanup mode: a plain session that really commits.
    """
    from sqlalchemy.ext.asyncio import AsyncSession

    if isolation_is_cleanup(request):
        async with AsyncSession(factory_async_engine, expire_on_commit=False) as session:
            yield session
        return
    async with factory_async_engine.connect() as connection:
        outer = await connection.begin()
        session = AsyncSession(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield session
        finally:
            await session.close()
            await outer.rollback()


@async_fixture
async def async_db_session(
    request: pytest.FixtureRequest, factory_async_session: AsyncSession
) -> AsyncIterator[AsyncSession]:
    """The AsyncSession the factories' ``*_async`` calls write through in this test (bound on
    first use); in cleanup mode the test's rows are deleted at teardown."""
    request.node.stash[ASYNC_BOUND] = factory_async_session
    try:
        yield factory_async_session
    finally:
        del request.node.stash[ASYNC_BOUND]
        scope = request.node.stash.get(TEST_SCOPE, None)
        if scope is not None and isolation_is_cleanup(request) and scope.rows:
            with registry.within(scope):
                try:
                    await registry.cleanup_all_async()
                except CleanupError as exc:
                    registry.forget(scope)
                    pytest.fail(f"factory cleanup failed:\n{exc}", pytrace=False)
