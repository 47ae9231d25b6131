"""A whole test suite, ours against plain factory_boy + pytest-factoryboy, as real pytest runs.

Generates one project of 400 small tests twice, over the same models (a tenant, a customer with
an address and three services):

- plain: factory_boy's ``SQLAlchemyModelFactory`` (flush persistence), ``register()`` by hand,
  and the usual fixture: the schema created in the configured database for the run, then per test
  one connection-level transaction and a session joined to it with SAVEPOINTs, factories bound to
  that session;
- ours: this package's plugin and ``TenantIsolatedFactory`` factories with the same
  declarations, configured by two ini lines (the plugin creates its own test database on a
  server, and drops it).

Each test takes the ``customer`` fixture. Both projects run as ``python -m pytest`` processes,
alternated, median of ``--repeat`` runs; the wall time includes start-up and database creation.
``--profile`` adds a cProfile of one of our runs, split into where the per-test time goes.
Timings are never asserted in tests; results go to ``benchmarks/suite.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

RESULTS = Path(__file__).with_name("suite.md")
PYTEST = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
"""How both projects run: quiet, no cache, pytest-randomly off (the order as written)."""

MODELS = """
from decimal import Decimal

from sqlalchemy import ForeignKey, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Tenant(Base):
    __tablename__ = "suite_tenants"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))


class Customer(Base):
    __tablename__ = "suite_customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("suite_tenants.id"))
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str] = mapped_column(String(120))
    tenant: Mapped[Tenant] = relationship()
    services: Mapped[list["Service"]] = relationship(back_populates="customer")


class Address(Base):
    __tablename__ = "suite_addresses"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("suite_tenants.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("suite_customers.id"))
    street: Mapped[str] = mapped_column(String(120))
    city: Mapped[str] = mapped_column(String(80))
    tenant: Mapped[Tenant] = relationship()
    customer: Mapped[Customer] = relationship()


class Service(Base):
    __tablename__ = "suite_services"
    id: Mapped[int] = mapped_column(primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("suite_tenants.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("suite_customers.id"))
    plan: Mapped[str] = mapped_column(String(40))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    tenant: Mapped[Tenant] = relationship()
    customer: Mapped[Customer] = relationship(back_populates="services")
"""

DECLARATIONS = """
    class Meta:
        model = models.{model}
        {meta}

{body}
"""

BODIES = {
    "Tenant": """    name = factory.Faker("company")""",
    "Customer": """    tenant = factory.SubFactory(TenantFactory)
    name = factory.Faker("name")
    email = factory.Faker("email")
    address = factory.RelatedFactory(AddressFactory, "customer")

    @factory.post_generation
    def services(obj, create, extracted, **kwargs):
        if create and extracted is None:
            ServiceFactory.create_batch(3, customer=obj)""",
    "Address": """    customer = factory.SubFactory("factories.CustomerFactory")
    tenant = factory.SelfAttribute("customer.tenant")
    street = factory.Faker("street_address")
    city = factory.Faker("city")""",
    "Service": """    customer = factory.SubFactory("factories.CustomerFactory")
    tenant = factory.SelfAttribute("customer.tenant")
    plan = factory.Iterator(["basic", "fiber", "business"])
    price = factory.Faker("pydecimal", left_digits=3, right_digits=2, positive=True)""",
}
ORDER = ("Tenant", "Address", "Service", "Customer")

PLAIN_CONFTEST = """
import pytest
from pytest_factoryboy import register
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

import factories
import models

for name in ("TenantFactory", "AddressFactory", "ServiceFactory", "CustomerFactory"):
    register(getattr(factories, name))


@pytest.fixture(scope="session")
def engine():
    engine = create_engine(URL)
    models.Base.metadata.drop_all(engine)
    models.Base.metadata.create_all(engine)
    yield engine
    models.Base.metadata.drop_all(engine)
    engine.dispose()


@pytest.fixture(autouse=True)
def db_session(engine):
    connection = engine.connect()
    transaction = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint")
    for name in ("TenantFactory", "AddressFactory", "ServiceFactory", "CustomerFactory"):
        getattr(factories, name)._meta.sqlalchemy_session = session
    yield session
    session.close()
    transaction.rollback()
    connection.close()
"""

TEST = """
def test_customer_{n}(customer):
    assert customer.id is not None and len(customer.services) == 3
"""


def factories_module(kind: str) -> str:
    """The four factories, as factory_boy's or ours, with the same declarations."""
    if kind == "plain":
        head = (
            "import factory\nfrom factory.alchemy import SQLAlchemyModelFactory\n\nimport models\n"
        )
        base = {m: "SQLAlchemyModelFactory" for m in ORDER}
        meta = 'sqlalchemy_session_persistence = "flush"'
    else:
        head = (
            "import factory\n\nfrom dotmac_factoryboy import SQLAlchemyFactory, "
            "TenantIsolatedFactory\n\nimport models\n"
        )
        base = {m: "SQLAlchemyFactory" if m == "Tenant" else "TenantIsolatedFactory" for m in ORDER}
        meta = ""
    parts = [head]
    for model in ORDER:
        body = BODIES[model]
        if kind == "ours":  # the tenant comes from the tree: no SelfAttribute needed
            body = body.replace('    tenant = factory.SelfAttribute("customer.tenant")\n', "")
        parts.append(
            f"\n\nclass {model}Factory({base[model]}):"
            + DECLARATIONS.format(model=model, meta=meta, body=body).rstrip()
        )
    return "\n".join(parts) + "\n"


def generate(root: Path, kind: str, tests: int, url: str) -> Path:
    project = root / kind
    project.mkdir()
    (project / "models.py").write_text(textwrap.dedent(MODELS))
    (project / "factories.py").write_text(factories_module(kind))
    body = "".join(TEST.format(n=n) for n in range(tests))
    (project / "test_suite.py").write_text(body)
    if kind == "plain":
        (project / "conftest.py").write_text(f"URL = {url!r}\n" + PLAIN_CONFTEST)
        (project / "pytest.ini").write_text("[pytest]\naddopts = -p no:dotmac_factoryboy\n")
    else:
        (project / "conftest.py").write_text("import factories  # noqa: F401\n")
        (project / "pytest.ini").write_text(
            "[pytest]\nfactory_metadata = models:Base\n" + f"factory_db_url = {url}\n"
        )
    return project


PYTHON_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
"""Python as it runs by default: bytecode is cached, and so are the assertion-rewritten modules
pytest makes of every installed plugin (ours included); the warm-up run writes both. With
``PYTHONDONTWRITEBYTECODE=1`` and nothing cached yet (this machine's fresh virtualenvs) pytest
parses and rewrites every plugin's modules on every run, about 2 s more for both projects."""


def run(project: Path, *extra: str) -> tuple[float, float]:
    """(wall seconds of the whole process, seconds pytest reports for the tests)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *PYTEST, *extra],
        cwd=project,
        capture_output=True,
        text=True,
        env=PYTHON_ENV,
    )
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(
            f"{project.name}: pytest failed\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    reported = re.search(r"passed in ([0-9.]+)s", done.stdout)
    return wall, float(reported.group(1)) if reported else float("nan")


PARTS = {
    "database created and dropped": {
        "ours": ["pytest_plugin/fixtures.py:factory_engine"],
        "plain": ["conftest.py:engine"],
    },
    "per-test transaction, session, binding and tracking": {
        "ours": [
            "pytest_plugin/fixtures.py:factory_session",
            "pytest_plugin/fixtures.py:factory_binding",
            "pytest_plugin/fixtures.py:_lazily_bound",
        ],
        "plain": ["conftest.py:db_session"],
    },
    "reseeding and sequence resets": {
        "ours": ["pytest_plugin/fixtures.py:_reproducible"],
        "plain": [],
    },
    "factory calls (plan, declarations, ORM flush)": {
        "ours": [
            "dotmac_factoryboy/factories.py:_generate",
            "dotmac_factoryboy/factories.py:_run_batch",
        ],
        "plain": ["factory/base.py:_generate"],
    },
    "pytest-factoryboy fixtures (less the factory calls)": {
        "ours": [
            "pytest_factoryboy/fixture.py:model_fixture",
            "pytest_factoryboy/plugin.py:execute",
        ],
        "plain": [
            "pytest_factoryboy/fixture.py:model_fixture",
            "pytest_factoryboy/plugin.py:execute",
        ],
    },
}
"""Where a test's time goes: the functions whose cumulative time makes up each part."""


def profile(project: Path, kind: str, tests: int) -> dict[str, float]:
    """Milliseconds per test in each part, from one run under cProfile."""
    out = project / "run.prof"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cProfile",
            "-o",
            str(out),
            *PYTEST,
        ],
        cwd=project,
        capture_output=True,
        check=True,
        env=PYTHON_ENV,
    )
    stats = pstats.Stats(str(out)).stats  # type: ignore[attr-defined]
    total = max(entry[3] for entry in stats.values())

    def cumulative(names: list[str]) -> float:
        found = 0.0
        for (file, _, function), entry in stats.items():
            if any(file.endswith(n.split(":")[0]) and function == n.split(":")[1] for n in names):
                found += entry[3]
        return found

    parts = {part: cumulative(names[kind]) for part, names in PARTS.items()}
    calls = "factory calls (plan, declarations, ORM flush)"
    parts["pytest-factoryboy fixtures (less the factory calls)"] -= parts[calls]
    parts["pytest, imports and the rest"] = total - sum(parts.values())
    return {part: 1000 * seconds / tests for part, seconds in parts.items()}


def render_profile(label: str, rows: dict[str, dict[str, float]]) -> str:
    lines = [
        f"Per test, under cProfile ({label}; profiling slows both alike):",
        "",
        "| part | plain (ms per test) | ours (ms per test) |",
        "| --- | ---: | ---: |",
    ]
    for part in rows["ours"]:
        lines.append(f"| {part} | {rows['plain'][part]:.2f} | {rows['ours'][part]:.2f} |")
    total = {kind: sum(values.values()) for kind, values in rows.items()}
    lines.append(f"| whole run | {total['plain']:.2f} | {total['ours']:.2f} |")
    return "\n".join(lines) + "\n"


def plain_url(url: str, root: Path) -> str:
    return url if url else f"sqlite:///{root / 'plain.db'}"


def measure(
    label: str, url: str, tests: int, repeat: int, profiled: list[str]
) -> dict[str, object]:
    """Medians of ``repeat`` alternated runs of each project."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ours_url = url or f"sqlite:///{root / 'ours.db'}"
        projects = {
            "plain": generate(root, "plain", tests, plain_url(url, root)),
            "ours": generate(root, "ours", tests, ours_url),
        }
        for project in projects.values():  # write the bytecode (and pytest's rewritten) once
            run(project)
        walls: dict[str, list[float]] = {"plain": [], "ours": []}
        reported: dict[str, list[float]] = {"plain": [], "ours": []}
        for _ in range(repeat):
            for kind, project in projects.items():
                wall, inside = run(project)
                walls[kind].append(wall)
                reported[kind].append(inside)
        if label.startswith("SQLite"):
            shares = {kind: profile(project, kind, tests) for kind, project in projects.items()}
            profiled.append(render_profile(label, shares))
    row = {
        "backend": label,
        "plain": statistics.median(walls["plain"]),
        "ours": statistics.median(walls["ours"]),
        "plain_tests": statistics.median(reported["plain"]),
        "ours_tests": statistics.median(reported["ours"]),
    }
    print(row, flush=True)
    return row


def render(rows: list[dict[str, object]], tests: int, repeat: int) -> str:
    lines = [
        "# Whole test suite: ours against plain factory_boy + pytest-factoryboy",
        "",
        f"{tests} generated tests, each taking a `customer` fixture (a tenant, a customer, an "
        "address and three services), run as `python -m pytest` processes, alternated, median "
        f'of {repeat}. "plain": factory_boy\'s `SQLAlchemyModelFactory` (flush), `register()` by '
        "hand, schema created in the configured database, one connection-level transaction per "
        'test with a SAVEPOINT-joined session. "ours": this package\'s plugin and '
        "`TenantIsolatedFactory` factories with the same declarations (the plugin creates and "
        "drops its own test database on a server). Wall time includes interpreter start-up, "
        "collection and database creation, with Python's bytecode cache on (its default; a "
        "warm-up run writes it, and pytest's assertion-rewritten plugin modules with it).",
        "",
        f"Python {platform.python_version()}, {platform.machine()}, "
        f"`benchmarks/bench_suite.py --tests {tests} --repeat {repeat}`.",
        "",
        "| backend | plain (whole run) | ours (whole run) | ours / plain | plain (tests, as pytest "
        "reports) | ours (tests) | ours / plain (tests) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        p, o = float(r["plain"]), float(r["ours"])  # type: ignore[arg-type]
        pt, ot = float(r["plain_tests"]), float(r["ours_tests"])  # type: ignore[arg-type]
        lines.append(
            f"| {r['backend']} | {p:.2f} s | {o:.2f} s | {o / p:.2f}x | {pt:.2f} s | {ot:.2f} s "
            f"| {ot / pt:.2f}x |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tests", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", default=os.environ.get("DOTMAC_TEST_POSTGRES_URL"))
    parser.add_argument("--mariadb", default=os.environ.get("DOTMAC_TEST_MARIADB_URL"))
    parser.add_argument("--write", action="store_true", help=f"write {RESULTS.name}")
    args = parser.parse_args()
    profiled: list[str] = []
    rows = [measure("SQLite (file)", "", args.tests, args.repeat, profiled)]
    if args.postgres:
        rows.append(measure("PostgreSQL", args.postgres, args.tests, args.repeat, profiled))
    if args.mariadb:
        rows.append(measure("MariaDB", args.mariadb, args.tests, args.repeat, profiled))
    table = render(rows, args.tests, args.repeat) + "\n" + "\n".join(profiled)
    print(table)
    if args.write:
        RESULTS.write_text(table)


if __name__ == "__main__":
    main()
