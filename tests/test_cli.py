"""The ``dotmac-factoryboy`` command: seed, lint and graph, through click's runner and as a real
subprocess, on SQLite and (when configured) PostgreSQL and MariaDB."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import make_url

from dotmac_factoryboy import lint, registry, seeding
from dotmac_factoryboy.cli import main
from dotmac_factoryboy.isp import factories as isp
from dotmac_factoryboy.isp.models import Base as ISPBase
from dotmac_factoryboy.isp.models import Customer, Invoice, Tenant, Ticket

from .backends import BACKENDS, server_url
from .dumps import dump
from .saas_schema import Organization

ROOT = Path(__file__).parent.parent
SMALL = ["--customers-per-tenant", "20", "--seed", "11", "--as-of", "2026-01-15"]


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def subprocess_run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The command as a real process; modules in ``cwd`` (a user's project) are importable."""
    path = os.pathsep.join(str(p) for p in (cwd, ROOT) if p is not None)
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "dotmac_factoryboy", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        check=False,
    )


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL of a new, empty database on each backend (dropped afterwards on servers)."""
    backend: str = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'seed.db'}"
        return
    server = server_url(backend)
    name = f"dotmac_cli_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            if admin.dialect.name == "postgresql":
                connection.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
            else:
                connection.execute(text(f"DROP DATABASE {name}"))
        admin.dispose()


def counts(url: str, *models: type) -> list[int]:
    engine = create_engine(url)
    with engine.connect() as connection:
        found = [connection.scalar(select(func.count()).select_from(m)) or 0 for m in models]
    engine.dispose()
    return found


def isp_dump(url: str) -> dict[str, list[str]]:
    engine = create_engine(url)
    try:
        return dump(engine, ISPBase.metadata)
    finally:
        engine.dispose()


# -- seed -------------------------------------------------------------------------------------


def test_seed_writes_a_realistic_isp_dataset(empty_url: str) -> None:
    result = run("seed", "--url", empty_url, "--tenants", "2", *SMALL)
    assert result.exit_code == 0, result.output
    tenants, customers, invoices, tickets = counts(empty_url, Tenant, Customer, Invoice, Ticket)
    assert (tenants, customers) == (2, 40)
    assert 40 * 3 <= invoices <= 40 * 12
    assert tickets >= 2
    engine = create_engine(empty_url)
    with engine.connect() as c:
        kinds = set(c.scalars(text("SELECT DISTINCT type FROM customers")))
        statuses = set(c.scalars(text("SELECT DISTINCT status FROM invoices")))
        sub_tickets = c.scalar(text("SELECT count(*) FROM tickets WHERE parent_id IS NOT NULL"))
        cross = c.scalar(
            text(
                "SELECT count(*) FROM services s JOIN customers c ON c.id = s.customer_id "
                "WHERE s.tenant_id <> c.tenant_id"
            )
        )
        linked = c.scalar(text("SELECT count(*) FROM service_devices"))
    engine.dispose()
    assert "residential" in kinds and statuses <= {"paid", "open", "overdue"} and "open" in statuses
    assert sub_tickets is not None and linked
    assert cross == 0
    assert "rows/s" in result.output and "--seed 11" in result.output


def test_same_seed_gives_identical_dumps_with_one_or_two_jobs(
    empty_url: str, tmp_path: Path
) -> None:
    first = run("seed", "--url", empty_url, "--tenants", "2", *SMALL)
    assert first.exit_code == 0, first.output
    expected = isp_dump(empty_url)
    other = f"sqlite:///{tmp_path / 'again.db'}"
    again = run("seed", "--url", other, "--tenants", "2", *SMALL)
    assert again.exit_code == 0, again.output
    assert isp_dump(other) == expected
    parallel = f"sqlite:///{tmp_path / 'parallel.db'}"
    proc = subprocess_run("seed", "--url", parallel, "--tenants", "2", "--jobs", "2", *SMALL)
    assert proc.returncode == 0, proc.stderr
    assert isp_dump(parallel) == expected


def test_shards_into_one_database_give_the_same_dump_as_one_run(empty_url: str) -> None:
    whole = run("seed", "--url", empty_url, "--tenants", "3", *SMALL)
    assert whole.exit_code == 0, whole.output
    expected = isp_dump(empty_url)
    engine = create_engine(empty_url)
    ISPBase.metadata.drop_all(engine)
    engine.dispose()
    first = run("seed", "--url", empty_url, "--tenants", "3", "--shard", "0/2", *SMALL)
    assert first.exit_code == 0, first.output
    assert counts(empty_url, Tenant) == [2]  # tenants 0 and 2
    second = run("seed", "--url", empty_url, "--tenants", "3", "--shard", "1/2", *SMALL)
    assert second.exit_code == 0, second.output
    assert "--shard 1/2" in second.output
    assert isp_dump(empty_url) == expected


def test_seed_in_rows_mode_writes_what_the_orm_writes(
    empty_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = run("seed", "--url", empty_url, "--tenants", "2", *SMALL)  # rows mode where possible
    assert fast.exit_code == 0, fast.output
    expected = isp_dump(empty_url)
    engine = create_engine(empty_url)
    ISPBase.metadata.drop_all(engine)
    engine.dispose()
    monkeypatch.setattr(seeding, "rows_where_possible", contextlib.nullcontext)
    orm = run("seed", "--url", empty_url, "--tenants", "2", *SMALL)  # every call through the ORM
    assert orm.exit_code == 0, orm.output
    assert isp_dump(empty_url) == expected


def test_another_seed_gives_other_data(tmp_path: Path) -> None:
    a, b = (f"sqlite:///{tmp_path / name}" for name in ("a.db", "b.db"))
    assert run("seed", "--url", a, "--tenants", "1", *SMALL).exit_code == 0
    assert run("seed", "--url", b, "--tenants", "1", *SMALL[:2], "--seed", "12").exit_code == 0
    assert isp_dump(a)["customers"] != isp_dump(b)["customers"]


def test_seed_refuses_a_database_that_holds_rows_and_appends_on_request(empty_url: str) -> None:
    assert run("seed", "--url", empty_url, "--tenants", "1", *SMALL).exit_code == 0
    before = isp_dump(empty_url)
    refused = run("seed", "--url", empty_url, "--tenants", "1", *SMALL)
    assert refused.exit_code == 1
    assert "already holds data" in refused.output and "--append" in refused.output
    assert isp_dump(empty_url) == before
    appended = run("seed", "--url", empty_url, "--tenants", "2", "--append", *SMALL)
    assert appended.exit_code == 0, appended.output
    assert counts(empty_url, Tenant, Customer) == [3, 60]
    engine = create_engine(empty_url)
    with engine.connect() as c:
        subdomains = sorted(c.scalars(text("SELECT subdomain FROM tenants")))
    engine.dispose()
    assert subdomains == ["tenant0001", "tenant0002", "tenant0003"]
    after = isp_dump(empty_url)
    assert all(set(before[t]) <= set(after[t]) for t in before)  # nothing changed, only added


def test_seed_a_users_own_models_without_a_hook(empty_url: str) -> None:
    result = run(
        "seed",
        "--url",
        empty_url,
        "--factories",
        "tests.saas_factories",
        "--metadata",
        "tests.saas_schema:SaasBase",
        "--tenants",
        "2",
        *SMALL,
    )
    assert result.exit_code == 0, result.output
    engine = create_engine(empty_url)
    with engine.connect() as c:
        docs_per_workspace = list(
            c.scalars(text("SELECT count(*) FROM saas_docs GROUP BY workspace_id"))
        )
        tasks = c.scalar(text("SELECT count(*) FROM saas_tasks"))
    engine.dispose()
    assert docs_per_workspace == [20, 20]
    assert tasks == 40
    assert counts(empty_url, Organization)[0] >= 2


USER_PROJECT = '''
"""A user's own schema: UUID-keyed clinics, a tenant column named clinic_uid, a seed hook."""
import uuid

import factory
from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from dotmac_factoryboy import SQLAlchemyFactory, TenantIsolatedFactory, tenant_context


class Base(DeclarativeBase):
    pass


class Clinic(Base):
    __tablename__ = "clinics"
    uid: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(80))


class Patient(Base):
    __tablename__ = "patients"
    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_uid: Mapped[uuid.UUID] = mapped_column(ForeignKey("clinics.uid"))
    name: Mapped[str] = mapped_column(String(80))
    mrn: Mapped[str] = mapped_column(String(20), unique=True)


class ClinicFactory(SQLAlchemyFactory[Clinic]):
    class Meta:
        model = Clinic

    name = factory.Faker("company")


class PatientFactory(TenantIsolatedFactory[Patient]):
    class Meta:
        model = Patient
        tenant_field = "clinic_uid"

    name = factory.Faker("name")
    mrn = factory.Sequence(lambda n: f"MRN{n:09d}")


def seed_tenant(ctx):
    with ctx.stage("clinic"):
        clinic = ClinicFactory.create(name=f"Clinic {ctx.index}")
    with tenant_context(clinic), ctx.stage("patients"):
        PatientFactory.create_batch(ctx.customers * 2)
'''


def test_seed_a_users_own_models_with_a_hook_in_a_subprocess(tmp_path: Path) -> None:
    (tmp_path / "clinic_app.py").write_text(USER_PROJECT)
    url = f"sqlite:///{tmp_path / 'clinic.db'}"
    proc = subprocess_run(
        "seed",
        "--url",
        url,
        "--factories",
        "clinic_app",
        "--metadata",
        "clinic_app:Base.metadata",
        "--jobs",
        "2",
        *SMALL,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    engine = create_engine(url)
    with engine.connect() as c:
        per_clinic = dict(
            c.execute(
                text(
                    "SELECT c.name, count(p.id) FROM clinics c JOIN patients p "
                    "ON p.clinic_uid = c.uid GROUP BY c.name ORDER BY c.name"
                )
            ).all()
        )
    engine.dispose()
    assert per_clinic == {"Clinic 0": 40, "Clinic 1": 40, "Clinic 2": 40}
    assert "120 rows" in proc.stdout.replace(",", "") or "123 rows" in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenants", "-1"], "--tenants"),
        (["--customers-per-tenant", "-5"], "--customers-per-tenant"),
        (["--jobs", "4", "--tenants", "3"], "--jobs 4 is more than --tenants 3"),
        (["--jobs", "0"], "--jobs"),
        (["--url", "postgresql+psycopg://nobody@127.0.0.1:1/none"], "cannot connect"),
        (["--url", "nosuchdialect://x"], "cannot connect"),
        (["--factories", "no_such_module_here"], "--factories no_such_module_here"),
        (["--metadata", "no_such_module_here:Base"], "--metadata no_such_module_here:Base"),
        (["--metadata", "dotmac_factoryboy.isp.models:Nope"], "has no attribute"),
        (["--factories", "json"], "defines no SQLAlchemyFactory"),
        (["--url", "sqlite://", "--jobs", "2"], "in-memory"),
        (["--seed", "-3"], "--seed"),
        (["--shard", "2/2"], "K must be at least 0 and less than N"),
        (["--shard", "first"], "is not K/N"),
        (["--shard", "0/2", "--append"], "use one"),
        (["--shard", "1/2", "--tenants", "3", "--jobs", "2"], "the 1 tenants of --shard 1/2"),
        (["--as-of", "yesterday"], "--as-of"),
        (["--customers-per-tenant", "600000"], "at most 500000"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    args: list[str], message: str, tmp_path: Path
) -> None:
    url = ["--url", f"sqlite:///{tmp_path / 'x.db'}"] if "--url" not in args else []
    result = run("seed", *url, *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert message in lines[0] and "Traceback" not in result.output
    assert not (tmp_path / "x.db").exists() or counts(f"sqlite:///{tmp_path / 'x.db'}", Tenant) == [
        0
    ]


def test_bad_input_in_a_real_subprocess(tmp_path: Path) -> None:
    proc = subprocess_run("seed", "--tenants", "-1", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "--tenants" in proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "isp_demo.db").exists()


def test_seed_default_url_is_an_sqlite_file_in_the_current_directory(tmp_path: Path) -> None:
    proc = subprocess_run("seed", "--tenants", "1", *SMALL, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert counts(f"sqlite:///{tmp_path / 'isp_demo.db'}", Customer) == [20]


# -- lint -------------------------------------------------------------------------------------

BROKEN = """
import factory
from dotmac_factoryboy import TenantIsolatedFactory
from dotmac_factoryboy.isp.factories import CustomerFactory
from dotmac_factoryboy.isp.models import Service


class BrokenServiceFactory(TenantIsolatedFactory[Service]):
    class Meta:
        model = Service
        register = False

    customer = factory.SubFactory(CustomerFactory)
    service_id = factory.Sequence(lambda n: f"B-{n}")
    plan = "Basic"
    bandwidth_mbps = 10
    monthly_price = 1

    class Params:
        unpriced = factory.Trait(monthly_price=None)
        fast = factory.Trait(bandwidth_mbps=1000)
"""


def test_lint_passes_on_the_isp_factories() -> None:
    result = run("lint")
    assert result.exit_code == 0, result.output
    assert "10 factories" in result.output and "0 failed" in result.output
    assert "[trait conflict]" in result.output


def test_lint_fails_on_a_broken_factory_and_names_it(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text(BROKEN)
    proc = subprocess_run("lint", "--factories", "broken_app", cwd=tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    failed = [line for line in proc.stdout.splitlines() if "BrokenServiceFactory" in line]
    assert any("unpriced" in line and "IntegrityError" in line for line in failed), proc.stdout
    assert not any("fast" in line and "unpriced" not in line for line in failed)
    assert "failed" in proc.stdout.splitlines()[-1]


def test_lint_api_from_a_test(session) -> None:  # type: ignore[no-untyped-def]
    report = lint(session=session, factories=[isp.CustomerFactory, isp.InvoiceFactory])
    assert report.ok, str(report)
    assert report.checked == 1 + 4 + 6 + 1 + 2 + 1
    assert session.scalar(select(func.count()).select_from(Customer)) == 0  # all rolled back
    assert not registry.instances


def test_lint_api_reports_unknown_declarations_and_failed_traits(session) -> None:  # type: ignore[no-untyped-def]
    namespace: dict[str, object] = {}
    exec(
        BROKEN.replace('plan = "Basic"', 'plan = "Basic"\n    colour = "red"'),
        namespace,
    )
    broken = namespace["BrokenServiceFactory"]
    report = lint(session=session, factories=[broken])
    assert not report.ok
    kinds = {(f.traits, f.exception) for f in report.failures}
    assert ((), "UnknownFieldError") in kinds
    assert any("colour" in f.message for f in report.failures)
    assert session.scalar(select(func.count()).select_from(Customer)) == 0


# -- graph ------------------------------------------------------------------------------------

EDGE = re.compile(r'^\s+(\w+) (-->|==>|-\.->)\|"([^"]+)"\| (\w+)$')


def test_graph_mermaid_parses_back_to_the_factories_links() -> None:
    result = run("graph")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0] == "flowchart LR"
    edges = {m.groups() for m in map(EDGE.match, lines) if m}
    assert ("ServiceFactory", "-->", "customer", "CustomerFactory") in edges
    assert ("InvoiceFactory", "==>", "payment (trait paid)", "PaymentFactory") in edges
    assert (
        "CustomerFactory",
        "-->",
        "billing_address (trait with_billing_address)",
        "AddressFactory",
    ) in edges
    assert ("TicketFactory", "-.->", "tenant", "TenantFactory") in edges
    assert not any(source == "TenantFactory" for source, *_ in edges)
    nodes = [line for line in lines if "[" in line and "|" not in line]
    assert len(nodes) == 10
    assert any("DeviceFactory: Device<br/>traits: router, ont" in n for n in nodes)


def test_graph_dot_in_a_subprocess_parses_back() -> None:
    proc = subprocess_run("graph", "--format", "dot")
    assert proc.returncode == 0, proc.stderr
    edges = set(re.findall(r'(\w+) -> (\w+) \[label="([^"]+)", style=(\w+)\]', proc.stdout))
    assert ("PaymentFactory", "InvoiceFactory", "invoice", "solid") in edges
    assert ("ServiceFactory", "TenantFactory", "tenant", "dashed") in edges
    assert proc.stdout.startswith("digraph factories {") and proc.stdout.rstrip().endswith("}")


def test_graph_of_a_users_factories() -> None:
    result = run("graph", "--factories", "tests.saas_factories")
    assert result.exit_code == 0
    assert '    DocFactory -.->|"workspace"| WorkspaceFactory' in result.output


def test_the_isp_docs_page_shows_the_current_graph() -> None:
    committed = (ROOT / "docs" / "isp-graph.mmd").read_text()
    assert committed == run("graph").output


FAILING_HOOK = """
from dotmac_factoryboy.isp.seed import seed_tenant as isp_seed_tenant
from dotmac_factoryboy.isp.factories import TenantFactory  # noqa: F401  (the factories)


def seed_tenant(ctx):
    if ctx.index == 1:
        raise ValueError("boom in the hook")
    isp_seed_tenant(ctx)
"""


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_failing_tenant_is_one_line_and_exit_code_1(jobs: str, tmp_path: Path) -> None:
    (tmp_path / "failing_hook.py").write_text(FAILING_HOOK)
    proc = subprocess_run(
        "seed",
        "--factories",
        "failing_hook",
        "--metadata",
        "dotmac_factoryboy.isp.models:Base",
        "--tenants",
        "2",
        "--jobs",
        jobs,
        *SMALL,
        cwd=tmp_path,
    )
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert errors == [
        "error: tenant 1: ValueError: boom in the hook Nothing was kept: the database is empty "
        "again."
    ]
    assert "Traceback" not in proc.stderr
    assert counts(f"sqlite:///{tmp_path / 'isp_demo.db'}", Tenant, Customer) == [0, 0]


def test_seed_refuses_tables_shaped_differently_before_writing(empty_url: str) -> None:
    engine = create_engine(empty_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE tenants (id INTEGER PRIMARY KEY)"))
    before = set(inspect(engine).get_table_names())
    result = run("seed", "--url", empty_url, "--tenants", "1", *SMALL)
    assert result.exit_code == 1
    assert "shaped differently" in result.output and "tenants lacks" in result.output
    assert set(inspect(engine).get_table_names()) == before  # nothing created or written
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE tenants"))
    engine.dispose()
