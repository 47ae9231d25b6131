"""Fixtures: one engine per configured backend, a session bound to the default registry, and a
wiped database after every test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import Engine, MetaData, text
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry
from dotmac_factoryboy.isp.models import Base as ISPBase

from . import (
    core_factories,  # noqa: F401  (registers the core test factories)
    through_async,
)
from .backends import BACKENDS, make_engine
from .saas_factories import saas_registry
from .saas_schema import SaasBase
from .schema import Base as CoreBase

# The reliability machines' profiles: registered here, before Hypothesis's plugin reads
# --hypothesis-profile (test modules are imported later); bounded and derandomized by default.
settings.register_profile(
    "ci",
    max_examples=20,
    stateful_step_count=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.register_profile(
    "long",
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("ci")

METADATAS: tuple[MetaData, ...] = (CoreBase.metadata, ISPBase.metadata, SaasBase.metadata)


@pytest.fixture(scope="session", params=BACKENDS)
def engine(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Engine]:
    """A live engine with both schemas created, once per backend."""
    backend: str = request.param
    engine = make_engine(backend, Path(tmp_path_factory.mktemp(backend)))
    for metadata in METADATAS:
        metadata.drop_all(engine)
        metadata.create_all(engine)
    yield engine
    for metadata in METADATAS:
        metadata.drop_all(engine)
    engine.dispose()


def wipe(engine: Engine) -> None:
    """Empty every table, whatever the foreign keys say (test infrastructure only)."""
    tables = [t for m in METADATAS for t in reversed(m.sorted_tables)]
    with engine.begin() as connection:
        dialect = engine.dialect.name
        if dialect == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in tables)
            connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            return
        if dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        else:
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
        for table in tables:
            connection.execute(table.delete())
        if dialect != "sqlite":
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")


@pytest.fixture
def through(request: pytest.FixtureRequest) -> str:
    """How the test creates rows: ``create`` (sync), or ``create_async`` (see through_async)."""
    return str(getattr(request, "param", "create"))


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    through_async.parametrize(metafunc)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    return through_async.run_through_async(pyfuncitem) or None


@pytest.fixture
def session(engine: Engine, through: str) -> Iterator[Session]:
    """A session bound to the default registry inside a fresh tracking scope."""
    db = Session(engine)
    with registry.bound(db), saas_registry.bound(db), registry.scope(), saas_registry.scope():
        try:
            yield db
        finally:
            db.rollback()
            db.close()
            wipe(engine)


def table_counts(session: Session) -> dict[str, int]:
    """Rows in every table of every test schema (misuse tests compare these before and after)."""
    from sqlalchemy import func, select

    return {
        t.name: int(session.execute(select(func.count()).select_from(t)).scalar_one())
        for m in METADATAS
        for t in m.sorted_tables
    }


def count(session: Session, model: type) -> int:
    """Rows of ``model`` in the database, read through a fresh query."""
    from sqlalchemy import func, select

    return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per reason tests were skipped (a missing server), not one line per test."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, number in sorted(reasons.items()):
        terminalreporter.write_line(f"skipped {number} tests: {reason}")
