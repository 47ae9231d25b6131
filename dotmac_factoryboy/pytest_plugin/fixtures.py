"""The plugin's fixtures: the run's engine, the session the factories bind, isolation, seeds."""

from __future__ import annotations

import asyncio
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import factory.random
import pytest
from sqlalchemy import Engine, MetaData, create_engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from ..builders import TestDataBuilder
from ..engines import sqlite_savepoints
from ..errors import CleanupError, ConfigurationError, first_line
from ..factory_boy_adapter import reset_sequences
from ..generators import DataGenerator
from ..registry import FactoryRegistry, TrackingScope, registry
from ..targets import load_metadata
from ..tenancy import TENANT_DEFAULT
from .async_fixtures import ASYNC_BOUND, DATABASE, TEST_SCOPE, isolation_is_cleanup
from .database import TestDatabase, shown_url

SEED = pytest.StashKey[int]()
METADATA = pytest.StashKey[list[str]]()
"""``module:attr`` specs added by plugins (the ISP domain adds its own)."""
BOUND = pytest.StashKey[Session]()
FOREIGN_DB_SESSION = pytest.StashKey[object]()


def configured_metadata(config: pytest.Config) -> list[MetaData]:
    """Option, else ini, plus what enabled plugins added; the core adds nothing of its own."""
    specs = list(config.getoption("factory_metadata")) or list(config.getini("factory_metadata"))
    return [
        load_metadata(spec, "factory_metadata")
        for spec in [*specs, *config.stash.get(METADATA, [])]
    ]


cleanup_mode = isolation_is_cleanup


@pytest.fixture(scope="session")
def factory_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """The run's engine, on the plugin's own test database, with the schema created once."""
    config = request.config
    metadatas = configured_metadata(config)
    try:
        database = TestDatabase.open(config, metadatas, tmp_path_factory.getbasetemp())
    except (SQLAlchemyError, ConfigurationError) as exc:  # one line for the run, not per test
        pytest.exit(
            f"dotmac-factoryboy: cannot prepare the test database for {shown_url(config)}: "
            f"{first_line(exc)}. Fix: on a server the plugin connects to the URL's database "
            "<name> to create test_<name>, so <name> must exist (or pass --factory-db-as-is to "
            "use the URL exactly as given).",
            returncode=pytest.ExitCode.USAGE_ERROR,
        )
    config.stash[DATABASE] = database
    engine = create_engine(database.url)
    if engine.dialect.name == "sqlite":
        sqlite_savepoints(engine)
        for metadata in metadatas:
            metadata.create_all(engine)
    yield engine
    engine.dispose()
    database.close(keep=bool(config.getoption("factory_reuse_db")))


@pytest.fixture
def factory_session(request: pytest.FixtureRequest, factory_engine: Engine) -> Iterator[Session]:
    """The session every factory binds for the test. Override it to hand the factories your
    application's session (see the docs' "Your own session" page).

    Rollback mode (default): an outer transaction with SAVEPOINTs, so even ``commit()`` leaves
    nothing behind. Cleanup mode: a plain session that really commits.
    """
    if cleanup_mode(request):
        with Session(factory_engine) as session:
            yield session
        return
    connection = factory_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def factory_binding(request: pytest.FixtureRequest, factory_session: Any) -> Iterator[Session]:
    """Binds ``factory_session`` to the registry and tracks the test's rows; in cleanup mode
    deletes them at teardown (after rolling back a session the test left broken)."""
    request.node.stash[BOUND] = factory_session
    _refuse_disconnected(request.node)
    with registry.bound(factory_session), registry.scope() as scope:
        try:
            yield factory_session
        finally:
            _close(request, scope)
            _forget_stashed(request.node, BOUND, FOREIGN_DB_SESSION)


def _close(request: pytest.FixtureRequest, scope: TrackingScope) -> None:
    """End a test's tracking scope (the current one): clean it up in cleanup mode, else forget
    it (its rows were rolled back, or belong to a session the test owns)."""
    if not cleanup_mode(request):
        registry.forget(scope)
        return
    try:
        registry.cleanup_all()
    except CleanupError as exc:
        registry.forget(scope)
        pytest.fail(f"factory cleanup failed:\n{exc}", pytrace=False)


@pytest.fixture
def db_session(factory_binding: Session) -> Session:
    """The session the factories write through in this test (``factory_session``, bound)."""
    return factory_binding


def _refuse_disconnected(node: pytest.Item) -> None:
    """A user's own ``db_session`` that is not the factories' session would split the test."""
    foreign = node.stash.get(FOREIGN_DB_SESSION, None)
    bound = node.stash.get(BOUND, None)
    if foreign is None or bound is None or foreign is bound:
        return
    raise ConfigurationError(
        "Your db_session fixture shadows dotmac-factoryboy's, so the factories would write "
        "through another session than your test reads. Fix: hand the factories your session "
        "in your conftest.py:\n\n    @pytest.fixture\n    def factory_session(db_session):\n"
        "        return db_session\n"
    )


@pytest.fixture
def factory_registry(factory_binding: Session) -> FactoryRegistry:
    """The registry, bound to this test's session and tracking scope."""
    return registry


@pytest.fixture
def data_generator(request: pytest.FixtureRequest) -> DataGenerator:
    """A DataGenerator seeded from the run's seed and the test's node id."""
    seed = request.config.stash[SEED]
    return DataGenerator(seed=zlib.crc32(f"{seed}:{request.node.nodeid}:data".encode()))


@pytest.fixture
def test_data_builder(factory_binding: Session, data_generator: DataGenerator) -> TestDataBuilder:
    """The fluent builder on this test's session."""
    return TestDataBuilder(registry, data_generator)


@pytest.fixture(autouse=True)
def _dotmac_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """What every test gets: its rows tracked in a scope of its own, a factory it uses bound to
    its ``factory_session`` on first use, and reproducible data. One fixture, as pytest's own
    cost is per fixture."""
    try:
        with _lazily_bound(request), _reproducible(request):
            yield
    finally:
        for own in _PER_TEST_CLASSES:  # a tenant set through a *_factory fixture ends here
            if TENANT_DEFAULT in vars(own):
                type.__delattr__(own, TENANT_DEFAULT)


@contextmanager
def _lazily_bound(request: pytest.FixtureRequest) -> Iterator[None]:
    """A factory used by a test that requested no session fixture still writes through the
    test's ``factory_session`` (bound on first use, so tests without factories open nothing),
    and every test tracks its rows in a scope of its own."""
    owner = threading.get_ident()

    def bind_on_first_use() -> None:
        # Only in the test's own thread: a fixture set up from another thread would bind in a
        # context the test never sees. In an event loop, the test's async_db_session (if any)
        # is bound in the calling task's context.
        if threading.get_ident() != owner:
            return
        if not _in_event_loop():
            request.getfixturevalue("factory_binding")
        elif ASYNC_BOUND in request.node.stash:
            registry.bind(request.node.stash[ASYNC_BOUND])

    # Every test tracks in a scope of its own, whatever session its factories write through
    # (a factory's own Meta.sqlalchemy_session too): nothing stays referenced after the test.
    with registry.bound_lazily(bind_on_first_use), registry.scope() as scope:
        request.node.stash[TEST_SCOPE] = scope
        try:
            yield
        finally:
            if scope.rows or scope.handlers:
                _close(request, scope)
            _forget_stashed(request.node, TEST_SCOPE)


def _forget_stashed(node: pytest.Item, *keys: pytest.StashKey[Any]) -> None:
    """Drop a test's objects from its item: pytest keeps every item to the end of the run, and
    with them each test's session, connection and rows."""
    for key in keys:
        if key in node.stash:
            del node.stash[key]


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def opted_in(config: pytest.Config) -> bool:
    """Whether the project uses the run's seed: a factory of ours is registered, or
    ``--factory-seed`` was given. A plain factory_boy suite keeps its own seeding."""
    return bool(registry.factories) or config.getoption("factory_seed") is not None


@contextmanager
def _reproducible(request: pytest.FixtureRequest) -> Iterator[None]:
    """Reseed factory_boy and Faker from (seed, node id), restart sequences, and restore every
    factory-level tenant default afterwards, so no test leaks into another.

    Only in a project that opted in (a factory of ours registered, or ``--factory-seed`` given):
    merely installing the package leaves a plain factory_boy suite's own seeding alone.
    """
    if not opted_in(request.config):
        yield
        return
    seed = request.config.stash[SEED]
    factory.random.reseed_random(zlib.crc32(f"{seed}:{request.node.nodeid}".encode()))
    factories = list(registry.factories.values())
    reset_sequences(factories)
    saved = {f: vars(f).get(TENANT_DEFAULT) for f in factories}
    try:
        yield
    finally:
        for factory_cls, value in saved.items():
            type.__setattr__(factory_cls, TENANT_DEFAULT, value)


def per_test_factory(factory_cls: Any, fixture_name: str) -> Any:
    """A ``*_factory`` fixture: a subclass of the factory's own, so a factory-level tenant set
    through it (``customer_factory.tenant_id = ...``) reaches only the test's calls through the
    fixture; it is removed after every test. The subclass is made once, not per test: a class
    costs as much as a small ``create()``."""
    own = type(factory_cls.__name__, (factory_cls,), {"__module__": factory_cls.__module__})
    _PER_TEST_CLASSES.append(own)

    @pytest.fixture(name=fixture_name)
    def per_test(factory_binding: Session) -> Any:
        # A plain fixture, no teardown of its own (pytest's cost is per finalizer): every
        # test's ``_dotmac_test`` removes what a test set on these classes.
        return own

    return per_test


_PER_TEST_CLASSES: list[Any] = []
"""The classes ``*_factory`` fixtures hand out (one per registered factory and fixture name)."""
