"""pytest plugin: a database per run, an isolated session per test, pytest-factoryboy fixtures for
every registered factory, DotMac scenario fixtures, and reproducible data.

Wiring only: the behaviour lives in the core modules and in ``dotmac_factoryboy.isp``.
"""

from __future__ import annotations

import importlib
import os
import random
import types
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import factory.random
import pytest
from sqlalchemy import Engine, MetaData, create_engine, event, make_url
from sqlalchemy.orm import Session

from .builders import TestDataBuilder
from .errors import CleanupError, FactoryNotFoundError
from .factory_boy_adapter import owns_sequence
from .generators import DataGenerator
from .registry import FactoryRegistry, registry

SEED = pytest.StashKey[int]()
WORKER_SEED = "dotmac_factory_seed"
FIXTURE_PLUGINS = pytest.StashKey[dict[str, Any]]()


# -- options and run-wide state -----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dotmac-factoryboy")
    group.addoption(
        "--factory-db-url",
        dest="factory_db_url",
        default=None,
        help="Database URL (default: ini factory_db_url, env DOTMAC_FACTORY_DB_URL, "
        "else an SQLite file private to the run).",
    )
    group.addoption(
        "--factory-metadata",
        dest="factory_metadata",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="MetaData (or declarative Base) whose schema is "
        "created once per run; repeatable. Default: the ISP domain.",
    )
    group.addoption(
        "--factory-seed",
        dest="factory_seed",
        type=int,
        default=None,
        help="Seed for factory_boy and Faker (default: random, shown in the header).",
    )
    parser.addini("factory_db_url", "Database URL for the factory fixtures.", default="")
    parser.addini(
        "factory_metadata", "MODULE:ATTR metadata to create.", type="linelist", default=[]
    )
    parser.addini("factory_isolation", "rollback (default) or cleanup.", default="rollback")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "factory_cleanup: commit for real and delete the created rows at teardown"
    )
    worker_input = getattr(config, "workerinput", None)
    seed = config.getoption("factory_seed")
    if seed is None and worker_input is not None:
        seed = worker_input.get(WORKER_SEED)
    config.stash[SEED] = seed if seed is not None else random.SystemRandom().randrange(2**31)
    config.stash[FIXTURE_PLUGINS] = {}
    importlib.import_module("dotmac_factoryboy.isp.factories")  # the reference domain's factories
    _sync_factory_fixtures(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker uses the controller's seed."""
    node.workerinput[WORKER_SEED] = node.config.stash[SEED]


def pytest_report_header(config: pytest.Config) -> str:
    return f"dotmac-factoryboy: --factory-seed {config.stash[SEED]} (database: {_db_url(config)})"


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    """A conftest was imported: factories it defined get fixtures too."""
    config = manager.get_plugin("pytestconfig")
    if (
        isinstance(config, pytest.Config)
        and FIXTURE_PLUGINS in config.stash
        and isinstance(plugin, types.ModuleType)
        and not _is_ours(plugin)
    ):
        _sync_factory_fixtures(config)


@pytest.hookimpl(wrapper=True)
def pytest_pycollect_makeitem(collector: pytest.Collector, name: str, obj: object) -> Any:
    """A test module was imported: factories it defined get fixtures before its tests do."""
    _sync_factory_fixtures(collector.config)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        seed = item.config.stash[SEED]
        report.sections.append(
            ("dotmac-factoryboy", f"reproduce with: pytest '{item.nodeid}' --factory-seed {seed}")
        )
    return report


# -- fixtures for every registered factory (pytest-factoryboy) ----------------------------------


def _is_ours(module: types.ModuleType) -> bool:
    return module.__name__.startswith("dotmac_factoryboy_fixtures_")


def _sync_factory_fixtures(config: pytest.Config) -> None:
    """Give every registered factory pytest-factoryboy fixtures (once per factory class)."""
    done: dict[str, Any] = config.stash[FIXTURE_PLUGINS]
    for name, factory_cls in registry.factories.items():
        if done.get(name) is factory_cls:
            continue
        done[name] = factory_cls
        module = types.ModuleType(f"dotmac_factoryboy_fixtures_{len(done)}_{name}")
        _register_fixtures(factory_cls, name, vars(module))
        config.pluginmanager.register(module, module.__name__)


def _register_fixtures(factory_cls: Any, name: str, namespace: dict[str, Any]) -> None:
    # pytest-factoryboy's register() injects into a Box around a namespace; Box is not exported
    # from its package, so this is the one place that imports it.
    from pytest_factoryboy import register
    from pytest_factoryboy.fixture import Box, get_factory_name

    model_name = name.removesuffix("_factory") if name.endswith("_factory") else f"{name}_instance"
    for fixture_name in {name, get_factory_name(factory_cls)}:
        namespace[fixture_name] = _per_test_factory(factory_cls, fixture_name)
    register(factory_cls, model_name, _caller_locals=Box(namespace))


def _per_test_factory(factory_cls: Any, fixture_name: str) -> Any:
    @pytest.fixture(name=fixture_name)
    def per_test_factory(db_session: Session) -> Any:
        """A subclass private to the test: ``factory.tenant_id = ...`` never leaks."""
        return type(factory_cls.__name__, (factory_cls,), {"__module__": factory_cls.__module__})

    return per_test_factory


# -- database -----------------------------------------------------------------------------------


def _db_url(config: pytest.Config) -> str:
    url: str | None = (
        config.getoption("factory_db_url")
        or str(config.getini("factory_db_url") or "")
        or os.environ.get("DOTMAC_FACTORY_DB_URL")
    )
    return url or "sqlite (private file)"


def _metadatas(config: pytest.Config) -> list[MetaData]:
    names = list(config.getoption("factory_metadata")) or list(config.getini("factory_metadata"))
    names = names or ["dotmac_factoryboy.isp.models:Base"]
    found = []
    for spec in names:
        module_name, _, attribute = spec.partition(":")
        value = getattr(importlib.import_module(module_name), attribute or "metadata")
        found.append(value if isinstance(value, MetaData) else value.metadata)
    return found


def _sqlite_savepoints(engine: Engine) -> None:
    """SQLAlchemy's pysqlite recipe: emit BEGIN ourselves so SAVEPOINTs behave; FKs on."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA foreign_keys=ON")

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


class _WorkerDatabase:
    """xdist: a database of its own per worker on a server backend, created and dropped here."""

    def __init__(self, url: str, worker: str) -> None:
        base = make_url(url)
        self.name = f"{base.database}_{worker}"
        self.admin = create_engine(base, isolation_level="AUTOCOMMIT")
        self.url = base.set(database=self.name).render_as_string(hide_password=False)
        self._run("DROP DATABASE IF EXISTS {}")
        self._run("CREATE DATABASE {}")

    def _run(self, statement: str) -> None:
        quoted = self.admin.dialect.identifier_preparer.quote(self.name)
        with self.admin.connect() as connection:
            connection.exec_driver_sql(statement.format(quoted))

    def drop(self) -> None:
        force = " WITH (FORCE)" if self.admin.dialect.name == "postgresql" else ""
        self._run("DROP DATABASE IF EXISTS {}" + force)
        self.admin.dispose()


@pytest.fixture(scope="session")
def factory_engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """The run's engine, with the schema of every configured metadata created once."""
    config = request.config
    url = _db_url(config)
    worker_db = None
    if url == "sqlite (private file)":
        url = f"sqlite:///{Path(tmp_path_factory.getbasetemp()) / 'dotmac_factoryboy.db'}"
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker and not url.startswith("sqlite"):
        worker_db = _WorkerDatabase(url, worker)
        url = worker_db.url
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        _sqlite_savepoints(engine)
    for metadata in _metadatas(config):
        metadata.create_all(engine)
    yield engine
    engine.dispose()
    if worker_db is not None:
        worker_db.drop()


@pytest.fixture
def db_session(request: pytest.FixtureRequest, factory_engine: Engine) -> Iterator[Session]:
    """A session bound to every factory. Rollback mode (default): an outer transaction with
    SAVEPOINTs, so even ``commit()`` leaves nothing behind. Cleanup mode: real commits, then the
    registry deletes what the factories created."""
    cleanup = bool(request.node.get_closest_marker("factory_cleanup")) or (
        request.config.getini("factory_isolation") == "cleanup"
    )
    if cleanup:
        session = Session(factory_engine)
        with registry.bound(session), registry.scope() as scope:
            try:
                yield session
            finally:
                try:
                    registry.cleanup_all()
                except CleanupError as exc:
                    registry.forget(scope)
                    pytest.fail(f"factory cleanup failed:\n{exc}", pytrace=False)
                finally:
                    session.close()
        return
    connection = factory_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    with registry.bound(session), registry.scope() as scope:
        try:
            yield session
        finally:
            session.close()
            outer.rollback()
            connection.close()
            registry.forget(scope)


@pytest.fixture(autouse=True)
def _dotmac_reproducible(request: pytest.FixtureRequest) -> Iterator[None]:
    """Reseed factory_boy and Faker from (seed, node id), restart sequences, and restore every
    factory-level tenant default afterwards, so no test leaks into another."""
    seed = request.config.stash[SEED]
    factory.random.reseed_random(zlib.crc32(f"{seed}:{request.node.nodeid}".encode()))
    factories = list(registry.factories.values())
    for factory_cls in factories:
        if owns_sequence(factory_cls):
            factory_cls.reset_sequence()
    saved = {f: vars(f).get("_dotmac_default_tenant") for f in factories}
    yield
    for factory_cls, value in saved.items():
        type.__setattr__(factory_cls, "_dotmac_default_tenant", value)


@pytest.fixture
def factory_registry(db_session: Session) -> FactoryRegistry:
    """The registry, bound to this test's session and tracking scope."""
    return registry


@pytest.fixture
def data_generator(request: pytest.FixtureRequest) -> DataGenerator:
    """A DataGenerator seeded from the run's seed and the test's node id."""
    seed = request.config.stash[SEED]
    return DataGenerator(seed=zlib.crc32(f"{seed}:{request.node.nodeid}:data".encode()))


@pytest.fixture
def test_data_builder(db_session: Session, data_generator: DataGenerator) -> TestDataBuilder:
    """The fluent builder on this test's session."""
    return TestDataBuilder(registry, data_generator)


# -- DotMac scenario fixtures -------------------------------------------------------------------


def _isp() -> Any:
    return importlib.import_module("dotmac_factoryboy.isp.factories")


@pytest.fixture
def basic_tenant_setup(db_session: Session) -> dict[str, Any]:
    """``tenant``, ``tenant_id`` and ``admin_user`` (an admin User of that tenant)."""
    isp = _isp()
    tenant = isp.TenantFactory.create()
    admin = isp.UserFactory.create(tenant=tenant, admin=True)
    return {"tenant": tenant, "tenant_id": tenant.id, "admin_user": admin}


@pytest.fixture
def customer_with_service(basic_tenant_setup: dict[str, Any]) -> dict[str, Any]:
    """``basic_tenant_setup`` plus ``customer`` and a ``service`` of that customer."""
    isp = _isp()
    customer = isp.CustomerFactory.create(tenant=basic_tenant_setup["tenant"])
    service = isp.ServiceFactory.create(customer=customer)
    return {**basic_tenant_setup, "customer": customer, "service": service}


@pytest.fixture
def complete_customer_scenario(
    customer_with_service: dict[str, Any], db_session: Session
) -> dict[str, Any]:
    """Plus ``billing_account``, ``invoice``, ``router`` and ``devices`` (linked to the service)."""
    isp = _isp()
    customer, service = customer_with_service["customer"], customer_with_service["service"]
    account = isp.BillingAccountFactory.create(customer=customer)
    invoice = isp.InvoiceFactory.create(billing_account=account, amount=service.monthly_price)
    router = isp.DeviceFactory.create(customer=customer, router=True)
    service.devices.append(router)
    db_session.flush()
    return {
        **customer_with_service,
        "billing_account": account,
        "invoice": invoice,
        "router": router,
        "devices": [router],
    }


@pytest.fixture
def support_ticket_scenario(customer_with_service: dict[str, Any]) -> dict[str, Any]:
    """Plus a ``technician`` and a ``ticket`` of the customer assigned to them."""
    isp = _isp()
    technician = isp.UserFactory.create(tenant=customer_with_service["tenant"], technician=True)
    ticket = isp.TicketFactory.create(
        customer=customer_with_service["customer"], assigned_to=technician
    )
    return {**customer_with_service, "technician": technician, "ticket": ticket}


@pytest.fixture
def multi_tenant_setup(db_session: Session) -> dict[str, Any]:
    """Two tenants with one customer each."""
    isp = _isp()
    tenant_a, tenant_b = isp.TenantFactory.create(), isp.TenantFactory.create()
    return {
        "tenant_a": tenant_a,
        "tenant_b": tenant_b,
        "customer_a": isp.CustomerFactory.create(tenant=tenant_a),
        "customer_b": isp.CustomerFactory.create(tenant=tenant_b),
    }


class BillingFactory:
    """DotMac's ``billing_factory``: ``create(entity_type=..., **kwargs)`` picks the factory."""

    ENTITY_TYPES = {
        "billing_account": "billing_account_factory",
        "invoice": "invoice_factory",
        "payment": "payment_factory",
    }

    def __init__(self, factories: FactoryRegistry) -> None:
        self.registry = factories

    def _factory(self, entity_type: str) -> Any:
        if entity_type not in self.ENTITY_TYPES:
            raise FactoryNotFoundError(
                f"billing_factory: unknown entity_type {entity_type!r}. Fix: use one of "
                f"{', '.join(self.ENTITY_TYPES)}."
            )
        return self.registry.get_factory(self.ENTITY_TYPES[entity_type])

    def create(self, entity_type: str, **kwargs: Any) -> Any:
        """Create a billing entity of ``entity_type``."""
        return self._factory(entity_type).create(**kwargs)

    def build(self, entity_type: str, **kwargs: Any) -> Any:
        """Build a billing entity of ``entity_type`` without writing it."""
        return self._factory(entity_type).build(**kwargs)


@pytest.fixture
def billing_factory(db_session: Session) -> BillingFactory:
    """Dispatches ``create(entity_type="billing_account"|"invoice"|"payment", ...)``."""
    return BillingFactory(registry)
