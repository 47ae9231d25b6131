"""pytest plugin: a test database it owns, the session your factories bind, pytest-factoryboy
fixtures for every registered factory, and reproducible data.

Hooks and options live here, the database lifecycle in ``database``, the fixtures in
``fixtures``. The core knows nothing of the ISP reference domain: enable its fixtures with
``pytest_plugins = ["dotmac_factoryboy.isp.pytest"]`` in a ``conftest.py``.
"""

from __future__ import annotations

import importlib
import random
import sys
import types
from typing import Any

import pytest
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from ..collector import freeze_survivors, unfreeze_survivors
from ..errors import TargetError
from ..registry import registry
from .async_fixtures import async_db_session, factory_async_engine, factory_async_session
from .database import ini_flag, shown_url
from .fixtures import (
    BOUND,
    FOREIGN_DB_SESSION,
    METADATA,
    SEED,
    _dotmac_test,
    _refuse_disconnected,
    configured_metadata,
    data_generator,
    db_session,
    factory_binding,
    factory_engine,
    factory_registry,
    factory_session,
    opted_in,
    per_test_factory,
    test_data_builder,
)

__all__ = [
    "_dotmac_test",
    "add_metadata",
    "async_db_session",
    "data_generator",
    "db_session",
    "factory_async_engine",
    "factory_async_session",
    "factory_binding",
    "factory_engine",
    "factory_registry",
    "factory_session",
    "test_data_builder",
]

WORKER_SEED = "dotmac_factory_seed"
SEED_CACHE = "dotmac_factoryboy/seed"
FIXTURE_PLUGINS = pytest.StashKey[dict[str, Any]]()
FROZE = pytest.StashKey[bool]()


def add_metadata(config: pytest.Config, spec: str) -> None:
    """Let a plugin (the ISP domain's) add a ``module:attr`` schema to the run's test database."""
    specs = config.stash.setdefault(METADATA, [])
    if spec not in specs:
        specs.append(spec)


# -- options and run-wide state -----------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("dotmac-factoryboy")
    group.addoption(
        "--factory-db-url",
        dest="factory_db_url",
        default=None,
        help="Database URL (precedence: this option, env DOTMAC_FACTORY_DB_URL, ini "
        "factory_db_url; default: an SQLite file private to the run). On a server the plugin "
        "works in a database of its own, test_<name>.",
    )
    group.addoption(
        "--factory-metadata",
        dest="factory_metadata",
        action="append",
        default=[],
        metavar="MODULE:ATTR",
        help="MetaData (or declarative Base) whose schema the test database gets; repeatable.",
    )
    group.addoption(
        "--factory-seed",
        dest="factory_seed",
        default=None,
        help="Seed for factory_boy and Faker: a number, or 'last' for the previous run's "
        "(default: pytest-randomly's seed when it runs, else random; shown in the header).",
    )
    group.addoption(
        "--factory-reuse-db",
        dest="factory_reuse_db",
        action="store_true",
        help="Keep the test database between runs; recreate its schema only when it changed.",
    )
    group.addoption(
        "--factory-db-as-is",
        dest="factory_db_as_is",
        action="store_true",
        help="Use the URL exactly as given (your own database and migrations): create and drop "
        "nothing.",
    )
    parser.addini("factory_db_url", "Database URL for the factory fixtures.", default="")
    parser.addini(
        "factory_metadata", "MODULE:ATTR metadata to create.", type="linelist", default=[]
    )
    parser.addini(
        "factory_modules", "Modules whose factories get fixtures.", type="linelist", default=[]
    )
    parser.addini("factory_isolation", "rollback (default) or cleanup.", default="rollback")
    parser.addini(
        "factory_create_db", "false: use the URL as is (like --factory-db-as-is).", default="true"
    )
    parser.addini(
        "factory_gc_freeze",
        "true: freeze the objects alive after collection (gc.freeze) until the session ends, "
        "so the tests' full collections skip them (default: false).",
        default="false",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "factory_cleanup: commit for real and delete the created rows at teardown"
    )
    config.stash[SEED] = _seed(config)
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    if cache is not None:
        cache.set(SEED_CACHE, config.stash[SEED])
    config.stash[FIXTURE_PLUGINS] = {}
    _load_settings(config)
    _sync_factory_fixtures(config)


def _load_settings(config: pytest.Config) -> None:
    """Import ``factory_modules`` and check ``factory_metadata`` now, the way pytest imports
    conftests (from the rootdir and ``pythonpath``): a bad setting is one usage error at
    start-up naming it, not an error in every test."""
    root = str(config.rootpath)
    if root not in sys.path:
        sys.path.insert(0, root)
    for module in config.getini("factory_modules"):
        try:
            importlib.import_module(module)
        except Exception as exc:
            raise pytest.UsageError(
                f"factory_modules: cannot import {module!r} ({type(exc).__name__}: {exc}). Fix: "
                "name a module importable from the rootdir or pythonpath, e.g. tests.factories."
            ) from None
    try:
        configured_metadata(config)
    except TargetError as exc:
        raise pytest.UsageError(f"factory_metadata: {exc}") from None


def _seed(config: pytest.Config) -> int:
    """--factory-seed N | last > xdist controller's > pytest-randomly's > random."""
    given = config.getoption("factory_seed")
    if given == "last":
        cache = getattr(config, "cache", None)
        last = cache.get(SEED_CACHE, None) if cache is not None else None
        if last is None:
            raise pytest.UsageError(
                "--factory-seed=last: no previous seed recorded (it needs pytest's cache "
                "provider and one earlier run)."
            )
        return int(last)
    if given is not None:
        try:
            return int(given)
        except ValueError:
            raise pytest.UsageError(
                f"--factory-seed takes a number or 'last', got {given!r}."
            ) from None
    worker_input = getattr(config, "workerinput", None)
    if worker_input is not None and WORKER_SEED in worker_input:
        return int(worker_input[WORKER_SEED])
    randomly = getattr(config.option, "randomly_seed", None)
    if config.pluginmanager.hasplugin("randomly") and isinstance(randomly, int):
        return randomly
    return random.SystemRandom().randrange(2**31)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """With ini ``factory_gc_freeze = true``: freeze what collection left alive (modules,
    fixtures, items: they live until the run ends), so the full collections the tests trigger
    stop walking it. Off by default: ``gc.get_referrers`` and ``gc.get_objects`` do not see
    frozen objects, and code under test may rely on them (Hypothesis' ``register_random`` does)."""
    config = session.config
    if ini_flag(config, "factory_gc_freeze"):
        config.stash[FROZE] = freeze_survivors()


def pytest_sessionfinish(session: pytest.Session) -> None:
    if session.config.stash.get(FROZE, False):
        session.config.stash[FROZE] = False
        unfreeze_survivors()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist: every worker uses the controller's seed."""
    node.workerinput[WORKER_SEED] = node.config.stash[SEED]


def pytest_report_header(config: pytest.Config) -> str:
    return f"dotmac-factoryboy: --factory-seed {config.stash[SEED]} (database: {shown_url(config)})"


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
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> Any:
    """Notice a user's own ``db_session`` that is not the session the factories bind."""
    value = yield
    func = fixturedef.func
    ours = getattr(func, "__module__", "") == f"{__name__}.fixtures"
    if fixturedef.argname == "db_session" and not ours:
        node = request.node
        node.stash[FOREIGN_DB_SESSION] = value
        bound = node.stash.get(BOUND, None)
        if bound is not None and bound is not value:
            _refuse_disconnected(node)
    return value


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed and _reproducible(item, call):
        seed = item.config.stash[SEED]
        report.sections.append(
            ("dotmac-factoryboy", f"reproduce with: pytest '{item.nodeid}' --factory-seed {seed}")
        )
    return report


def _reproducible(item: pytest.Item, call: pytest.CallInfo[None]) -> bool:
    """Whether a seed could reproduce the failure: the project uses the seed, and the failure is
    not a lost or refused database connection."""
    if not opted_in(item.config):
        return False
    error = call.excinfo.value if call.excinfo is not None else None
    return not isinstance(error, (OperationalError, InterfaceError, DisconnectionError))


# -- fixtures for every registered factory (pytest-factoryboy) ----------------------------------


def _is_ours(module: types.ModuleType) -> bool:
    return module.__name__.startswith("dotmac_factoryboy_fixtures_")


def _sync_factory_fixtures(config: pytest.Config) -> None:
    """Give every registered factory pytest-factoryboy fixtures (once per factory class); a
    fixture someone else defines under the same name is never replaced."""
    done: dict[str, Any] = config.stash[FIXTURE_PLUGINS]
    taken: set[str] | None = None
    for name, factory_cls in registry.factories.items():
        if done.get(name) is factory_cls:
            continue
        done[name] = factory_cls
        module = types.ModuleType(f"dotmac_factoryboy_fixtures_{len(done)}_{name}")
        namespace = vars(module)
        _register_fixtures(factory_cls, name, namespace)
        taken = _fixtures_of_others(config) if taken is None else taken
        for fixture_name in taken & set(namespace):  # yours (or another plugin's) win
            del namespace[fixture_name]
        config.pluginmanager.register(module, module.__name__)


def _fixtures_of_others(config: pytest.Config) -> set[str]:
    """Fixture names defined by every plugin registered so far (conftests, ``pytest_plugins``
    modules, installed plugins), except our generated ones.

    pytest has no public way to list fixtures before collection; ``getfixturemarker`` (private
    to ``_pytest.fixtures``) is what pytest itself uses to recognise one.
    """
    from _pytest.fixtures import getfixturemarker

    names: set[str] = set()
    for plugin in config.pluginmanager.get_plugins():
        if isinstance(plugin, types.ModuleType) and _is_ours(plugin):
            continue
        values = vars(plugin).items() if isinstance(plugin, types.ModuleType) else ()
        for attribute, value in values:
            marker = getfixturemarker(value)
            if marker is not None:
                names.add(marker.name or attribute)
    return names


def _register_fixtures(factory_cls: Any, name: str, namespace: dict[str, Any]) -> None:
    # pytest-factoryboy's register() injects into a Box around a namespace; Box is not exported
    # from its package, so this is the one place that imports it.
    from pytest_factoryboy import register
    from pytest_factoryboy.fixture import Box, get_factory_name

    model_name = name.removesuffix("_factory") if name.endswith("_factory") else f"{name}_instance"
    for fixture_name in {name, get_factory_name(factory_cls)}:
        namespace[fixture_name] = per_test_factory(factory_cls, fixture_name)
    register(factory_cls, model_name, _caller_locals=Box(namespace))
