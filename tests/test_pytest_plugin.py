"""The pytest plugin, exercised the way users meet it: generated projects run by pytester."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from sqlalchemy import create_engine, make_url, text

from .backends import BACKENDS, SERVER_URLS, unavailable

USES_EVERY_FIXTURE = '''
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from dotmac_factoryboy.isp.models import Customer, Tenant


@pytest.fixture(scope="function")
def my_custom_scenario(customer_factory, service_factory, billing_factory):
    """Create custom test scenario (the DotMac README's example)."""
    customer = customer_factory.create(type="enterprise")

    services = []
    for service_type in ["internet", "phone", "tv"]:
        service = service_factory.create(
            customer_id=customer.id,
            service_type=service_type
        )
        services.append(service)

    billing_account = billing_factory.create(
        entity_type="billing_account",
        customer_id=customer.id,
        credit_limit=Decimal("5000.00")
    )

    return {
        'customer': customer,
        'services': services,
        'billing_account': billing_account
    }


def test_custom_scenario(my_custom_scenario, db_session):
    customer = my_custom_scenario["customer"]
    assert {s.customer_id for s in my_custom_scenario["services"]} == {customer.id}
    assert my_custom_scenario["billing_account"].customer_id == customer.id
    assert db_session.scalar(select(func.count()).select_from(Customer)) == 1


@pytest.fixture
def customer__name():
    return "Fixture Name"


def test_model_and_attribute_fixtures(customer, customer__name, customer_factory):
    assert customer.id is not None and customer.name == customer__name == "Fixture Name"
    assert issubclass(customer_factory, customer_factory.__mro__[1])
    assert customer_factory.create().tenant_id is not None


def test_create_customer(tenant_factory, customer_factory):
    tenant = tenant_factory.create(name="Test ISP", subdomain="testisp")
    customer_factory.tenant_id = tenant.id
    customer = customer_factory.create(name="John Doe", email="john@example.com", type="residential")
    assert customer.tenant_id == tenant.id
    assert customer.name == "John Doe"


def test_scenarios(basic_tenant_setup, customer_with_service, complete_customer_scenario,
                   support_ticket_scenario, multi_tenant_setup):
    tenant = basic_tenant_setup["tenant"]
    assert basic_tenant_setup["admin_user"].role == "admin"
    assert basic_tenant_setup["admin_user"].tenant_id == basic_tenant_setup["tenant_id"] == tenant.id
    customer, service = customer_with_service["customer"], customer_with_service["service"]
    assert service.customer_id == customer.id and customer.tenant_id == tenant.id
    entities = complete_customer_scenario
    for key in ("customer", "service", "billing_account", "invoice", "router", "devices"):
        assert key in entities
    assert entities["router"] in entities["service"].devices
    ticket = support_ticket_scenario["ticket"]
    assert ticket.assigned_to is support_ticket_scenario["technician"]
    a, b = multi_tenant_setup["customer_a"], multi_tenant_setup["customer_b"]
    assert a.tenant_id == multi_tenant_setup["tenant_a"].id != b.tenant_id == multi_tenant_setup["tenant_b"].id


def test_cross_tenant_scenarios(factory_registry):
    tenant_factory = factory_registry.get_factory("tenant_factory")
    customer_factory = factory_registry.get_factory("customer_factory")
    tenant1 = tenant_factory.create(name="ISP Alpha")
    tenant2 = tenant_factory.create(name="ISP Beta")
    customer_factory.tenant_id = tenant1.id
    customer1 = customer_factory.create(name="Customer Alpha")
    customer_factory.tenant_id = tenant2.id
    customer2 = customer_factory.create(name="Customer Beta")
    assert customer1.tenant_id != customer2.tenant_id


def test_builder_and_generator(test_data_builder, data_generator, factory_engine):
    from dotmac_factoryboy import DataType
    customer = (test_data_builder.entity("customer_factory")
                .with_generated_attribute("email", DataType.EMAIL).build())
    assert "@" in customer.email and data_generator.generate(DataType.NAME)
    assert factory_engine.dialect.name in {"sqlite", "postgresql", "mysql", "mariadb"}


def test_billing_factory_rejects_unknown_types(billing_factory):
    from dotmac_factoryboy.errors import FactoryNotFoundError
    with pytest.raises(FactoryNotFoundError, match="billing_account, invoice, payment"):
        billing_factory.create(entity_type="refund")
'''


def server_url(backend: str) -> str | None:
    if backend == "sqlite":
        return None
    url = os.environ.get(SERVER_URLS[backend])
    if not url:
        unavailable(
            f"{backend} not configured: set {SERVER_URLS[backend]} to run these tests on it"
        )
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:
        unavailable(f"{backend} unreachable: {exc}")
    finally:
        engine.dispose()
    return url


ISP_CONFTEST = 'pytest_plugins = ["dotmac_factoryboy.isp.pytest"]\n'


def run(
    pytester: pytest.Pytester, *args: str, url: str | None = None, isp: bool = True
) -> pytest.RunResult:
    """Run the project in a subprocess; ``isp`` enables the ISP domain's fixtures."""
    if isp and not (pytester.path / "conftest.py").exists():
        pytester.makeconftest(ISP_CONFTEST)
    options = [*args, "-p", "no:cacheprovider"]
    if url:
        options += ["--factory-db-url", url]
    return pytester.runpytest_subprocess(*options)


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str | None:
    return server_url(request.param)


def test_every_fixture_in_a_generated_module(
    pytester: pytest.Pytester, backend_url: str | None
) -> None:
    pytester.makepyfile(test_everything=USES_EVERY_FIXTURE)
    result = run(pytester, url=backend_url)
    result.assert_outcomes(passed=7)


ISOLATION = """
import pytest
from sqlalchemy import create_engine, func, select
from dotmac_factoryboy.isp.models import Customer

def rows(session):
    return session.scalar(select(func.count()).select_from(Customer))

{marker}
def test_1_creates_and_commits(customer_factory, db_session, factory_engine):
    customer_factory.create_batch(3)
    db_session.commit()
    assert rows(db_session) == 3
    with factory_engine.connect() as other:
        seen = other.scalar(select(func.count()).select_from(Customer))
    assert seen == {seen_elsewhere}

{marker}
def test_2_sees_nothing(db_session):
    assert rows(db_session) == 0
"""


@pytest.mark.parametrize(
    ("marker", "ini", "seen_elsewhere"),
    [("", "", 0), ("@pytest.mark.factory_cleanup", "", 3), ("", "factory_isolation = cleanup", 3)],
    ids=["rollback", "marker-cleanup", "ini-cleanup"],
)
def test_rows_never_survive_a_test(
    pytester: pytest.Pytester, backend_url: str | None, marker: str, ini: str, seen_elsewhere: int
) -> None:
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile(test_iso=ISOLATION.format(marker=marker, seen_elsewhere=seen_elsewhere))
    run(pytester, url=backend_url).assert_outcomes(passed=2)


def test_cleanup_error_fails_the_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_blocked="""
        import pytest
        from dotmac_factoryboy.isp.models import Customer, Service

        @pytest.mark.factory_cleanup
        def test_leaves_a_foreign_row(customer, db_session):
            db_session.add(Service(customer=customer, tenant_id=customer.tenant_id, service_id="SRV-9",
                                   plan="p", bandwidth_mbps=1, monthly_price=1))
            db_session.commit()
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*factory cleanup failed*", "*customers*referenced from services*"]
    )


def test_factory_level_tenant_does_not_leak(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_leak="""
        from dotmac_factoryboy.isp.factories import CustomerFactory

        def test_1_sets(customer_factory, factory_registry, tenant):
            customer_factory.tenant_id = tenant.id
            factory_registry.get_factory("customer_factory").tenant_id = tenant.id
            assert customer_factory.create().tenant_id == tenant.id

        def test_2_clean(customer_factory):
            assert customer_factory.tenant_id is None and CustomerFactory.tenant_id is None
        """
    )
    run(pytester).assert_outcomes(passed=2)


REPRODUCIBLE = """
import json, pathlib

def record(request, customer):
    out = pathlib.Path({out!r})
    with out.open("a") as handle:
        handle.write(json.dumps([request.node.name, customer.name, customer.email,
                                 customer.customer_number, customer.service_address.street]) + "\\n")

def test_a(request, customer):
    record(request, customer)

def test_b(request, customer):
    record(request, customer)
"""


def read_records(path: str) -> dict[str, list[str]]:
    with open(path) as handle:
        return {row[0]: row[1:] for row in map(json.loads, handle)}


def test_same_seed_same_data_across_runs_and_orders(pytester: pytest.Pytester) -> None:
    out = str(pytester.path / "records.jsonl")
    pytester.makepyfile(test_repro=REPRODUCIBLE.format(out=out))
    run(pytester, "--factory-seed", "1234").assert_outcomes(passed=2)
    first = read_records(out)
    os.remove(out)
    run(pytester, "--factory-seed", "1234").assert_outcomes(passed=2)
    assert read_records(out) == first
    os.remove(out)
    run(pytester, "--factory-seed", "1234", "-k", "test_b").assert_outcomes(passed=1)
    assert read_records(out) == {"test_b": first["test_b"]}
    os.remove(out)
    run(pytester, "--factory-seed", "99").assert_outcomes(passed=2)
    assert read_records(out)["test_a"] != first["test_a"]


def test_failing_test_shows_the_seed_and_header_shows_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fail="def test_fails(customer):\n    assert customer.name == 'nobody'\n"
    )
    result = run(pytester, "--factory-seed", "4242")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "dotmac-factoryboy: --factory-seed 4242*",
            "*reproduce with: pytest *test_fails* --factory-seed 4242*",
        ]
    )
    random_run = run(pytester)
    random_run.stdout.fnmatch_lines(["dotmac-factoryboy: --factory-seed *"])


def test_users_own_models_and_factories_get_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        shop=textwrap.dedent(
            """
            import factory
            from sqlalchemy import ForeignKey, String
            from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
            from dotmac_factoryboy import SQLAlchemyFactory

            class Base(DeclarativeBase):
                pass

            class Shelf(Base):
                __tablename__ = "shelves"
                id: Mapped[int] = mapped_column(primary_key=True)
                label: Mapped[str] = mapped_column(String(20))

            class Widget(Base):
                __tablename__ = "widgets"
                id: Mapped[int] = mapped_column(primary_key=True)
                name: Mapped[str] = mapped_column(String(40))
                shelf_id: Mapped[int] = mapped_column(ForeignKey("shelves.id"))
                shelf: Mapped[Shelf] = relationship()

            class ShelfFactory(SQLAlchemyFactory[Shelf]):
                class Meta:
                    model = Shelf
                label = factory.Sequence(lambda n: f"S{n}")

            class WidgetFactory(SQLAlchemyFactory[Widget]):
                class Meta:
                    model = Widget
                name = factory.Faker("word")
                shelf = factory.SubFactory(ShelfFactory)

            class GadgetFactory(SQLAlchemyFactory[Widget]):
                class Meta:
                    model = Widget
                    register = False
                name = "gadget"
                shelf = factory.SubFactory(ShelfFactory)
            """
        )
    )
    pytester.makeconftest(
        "from pytest_factoryboy import register\nimport shop\n\n"
        "register(shop.GadgetFactory, 'special_gadget')\n"
    )
    pytester.makepyfile(
        test_shop="""
        import pytest

        @pytest.fixture
        def widget__name():
            return "sprocket"

        def test_auto(widget, widget__name, widget_factory, shelf, db_session):
            assert widget.id is not None and widget.name == widget__name == "sprocket"
            assert widget_factory.create(shelf=shelf).shelf is shelf

        def test_explicit_register(special_gadget):
            assert special_gadget.name == "gadget" and special_gadget.id is not None
        """
    )
    run(pytester, "--factory-metadata", "shop:Base", isp=False).assert_outcomes(passed=2)


XDIST_SEEDING = """
import json, os, pytest
from sqlalchemy import func, select
from dotmac_factoryboy.isp.models import Address, Customer

pytestmark = pytest.mark.factory_cleanup

def rows(session):
    return [session.scalar(select(func.count()).select_from(m)) for m in (Address, Customer)]

@pytest.mark.parametrize("n", range(10))
def test_seed_and_clean(n, address_factory, customer_factory, db_session):
    assert rows(db_session) == [0, 0]  # nothing of the other worker, nothing of earlier tests
    address_factory.insert_batch(300)  # seeding: rows mode
    customer_factory.create_batch(10)  # and their addresses
    db_session.commit()
    assert rows(db_session) == [310, 10]
    with open(os.environ["OUT"], "a") as out:
        worker = os.environ["PYTEST_XDIST_WORKER"]
        out.write(json.dumps([worker, db_session.get_bind().url.database]) + "\\n")
"""


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "sqlite"])
def test_two_xdist_workers_seed_and_clean_their_own_databases(
    pytester: pytest.Pytester, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers on one server, committing and cleaning up in parallel: each test starts from
    an empty database, each worker has a database of its own, and none is left at the end."""
    url = server_url(backend)
    assert url is not None
    out = pytester.path / "databases.jsonl"
    monkeypatch.setenv("OUT", str(out))
    pytester.makepyfile(test_parallel=XDIST_SEEDING)
    run(pytester, "-n", "2", url=url).assert_outcomes(passed=10)
    used = {tuple(json.loads(line)) for line in out.read_text().splitlines()}
    workers = {worker for worker, _ in used}
    assert workers == {"gw0", "gw1"} and len(used) == 2  # one database per worker, not shared
    assert {database for _, database in used} == {
        f"test_{make_url(url).database}_{w}" for w in workers
    }
    engine = create_engine(url)
    with engine.connect() as connection:
        names = connection.execute(
            text("SELECT datname FROM pg_database")
            if backend == "postgresql"
            else text("SELECT schema_name FROM information_schema.schemata")
        ).scalars()
        left = [name for name in names if name.startswith("test_") and "_gw" in name]
    engine.dispose()
    assert left == []


# -- a stranger's project (issue 13) ---------------------------------------------------------------

STRANGER_MODELS = """
import factory
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from dotmac_factoryboy import SQLAlchemyFactory

class Base(DeclarativeBase):
    pass

class User(Base):
    __tablename__ = "app_users"
    id: Mapped[int] = mapped_column(primary_key=True)
    login: Mapped[str] = mapped_column(String(40), unique=True)
    {extra_column}

class Customer(Base):
    __tablename__ = "app_customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    company: Mapped[str] = mapped_column(String(80))
    owner_id: Mapped[int] = mapped_column(ForeignKey("app_users.id"))
    owner: Mapped[User] = relationship()

class UserFactory(SQLAlchemyFactory[User]):
    class Meta:
        model = User
    login = factory.Sequence(lambda n: f"user{{n}}")

class CustomerFactory(SQLAlchemyFactory[Customer]):
    class Meta:
        model = Customer
    company = factory.Faker("company")
    owner = factory.SubFactory(UserFactory)
    ip = factory.Faker("ipv4_private", network=True)

    class Meta:
        model = Customer
        exclude = ("ip",)
"""


def stranger(pytester: pytest.Pytester, extra_column: str = "") -> None:
    pytester.makepyfile(app=STRANGER_MODELS.format(extra_column=extra_column))
    pytester.makeini("[pytest]\nfactory_metadata = app:Base\nfactory_modules = app\n")


def test_a_run_keeps_no_test_s_rows_or_session_alive(pytester: pytest.Pytester) -> None:
    """pytest keeps every item to the end of the run, and pytest-factoryboy makes a throwaway
    factory class for every model fixture: neither may keep a test's rows, session or
    connection alive (a suite's memory would grow with its length)."""
    stranger(pytester)
    out = pytester.path / "alive.json"
    pytester.makeconftest(
        f"""
        import gc, json
        from sqlalchemy.engine import Connection
        from sqlalchemy.orm import Session
        import app

        def pytest_unconfigure(config):
            gc.collect()
            kinds = (app.Customer, app.User, Session, Connection)
            alive = {{k.__name__: 0 for k in kinds}}
            for obj in gc.get_objects():
                for kind in kinds:
                    if isinstance(obj, kind):
                        alive[kind.__name__] += 1
            with open({str(out)!r}, "w") as handle:
                json.dump(alive, handle)
        """
    )
    pytester.makepyfile(
        test_many="\n".join(
            f"def test_{i}(customer, customer_factory):\n    customer_factory.create_batch(2)\n"
            for i in range(30)
        )
    )
    run(pytester, isp=False).assert_outcomes(passed=30)
    alive = json.loads(out.read_text())
    assert all(count <= 3 for count in alive.values()), alive  # the last test's, at most


def test_a_strangers_customer_and_user_are_not_shadowed(pytester: pytest.Pytester) -> None:
    stranger(pytester)
    pytester.makepyfile(
        test_app="""
        import pytest
        import app

        def test_own_fixtures(customer, user, customer_factory, db_session):
            assert isinstance(customer, app.Customer) and isinstance(user, app.User)
            assert customer_factory._meta.model is app.Customer
            assert customer.owner.id is not None

        def test_no_isp_fixtures(request):
            for name in ("tenant", "basic_tenant_setup", "billing_factory", "invoice"):
                with pytest.raises(pytest.FixtureLookupError):
                    request.getfixturevalue(name)

        def test_fakers_own_ipv4_private_is_untouched():
            import factory
            made = factory.build(dict, ip=factory.Faker("ipv4_private", network=True))
            assert "/" in made["ip"]
        """
    )
    run(pytester, isp=False).assert_outcomes(passed=3)


def test_a_users_own_db_session_is_refused_until_wired(pytester: pytest.Pytester) -> None:
    stranger(pytester)
    pytester.makeconftest(
        """
        import pytest
        from sqlalchemy.orm import Session

        @pytest.fixture
        def db_session(factory_engine):
            with Session(factory_engine) as session:
                yield session
        """
    )
    pytester.makepyfile(test_app="def test_split(customer, db_session):\n    pass\n")
    result = run(pytester, isp=False)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*db_session fixture shadows*", "*def factory_session(db_session)*"]
    )
    (pytester.path / "conftest.py").write_text(
        (pytester.path / "conftest.py").read_text()
        + "\n\n@pytest.fixture\ndef factory_session(db_session):\n    return db_session\n"
    )
    pytester.makepyfile(
        test_app="def test_joined(customer, db_session):\n    assert customer in db_session\n"
    )
    run(pytester, isp=False).assert_outcomes(passed=1)


def test_cleanup_mode_survives_a_test_that_broke_its_session(pytester: pytest.Pytester) -> None:
    stranger(pytester)
    pytester.makepyfile(
        test_app="""
        import pytest
        from sqlalchemy import func, select
        from sqlalchemy.exc import IntegrityError
        import app

        pytestmark = pytest.mark.factory_cleanup

        def test_breaks(user_factory, db_session):
            user = user_factory.create(login="taken")
            db_session.commit()
            db_session.add(app.User(login="taken"))
            with pytest.raises(IntegrityError):
                db_session.flush()

        def test_after(db_session):
            assert db_session.scalar(select(func.count()).select_from(app.User)) == 0
        """
    )
    run(pytester, isp=False).assert_outcomes(passed=2)


def test_the_header_hides_the_password(pytester: pytest.Pytester) -> None:
    url = server_url("postgresql")
    assert url is not None
    secret = url.replace("postgres@", "postgres:s3cret@", 1)
    stranger(pytester)
    pytester.makepyfile(test_app="def test_ok(customer):\n    pass\n")
    result = run(pytester, url=secret, isp=False)
    result.assert_outcomes(passed=1)
    assert "s3cret" not in result.stdout.str()
    result.stdout.fnmatch_lines(["*database: postgresql+psycopg://postgres:***@*test*"])


def test_a_model_gaining_a_column_gets_a_fresh_schema(pytester: pytest.Pytester) -> None:
    url = server_url("postgresql")
    assert url is not None
    stranger(pytester)
    pytester.makepyfile(test_app="def test_ok(customer):\n    pass\n")
    run(pytester, "--factory-reuse-db", url=url, isp=False).assert_outcomes(passed=1)
    stranger(
        pytester, extra_column='nickname: Mapped[str] = mapped_column(String(20), default="x")'
    )
    pytester.makepyfile(test_app="def test_new_column(user):\n    assert user.nickname == 'x'\n")
    run(pytester, "--factory-reuse-db", url=url, isp=False).assert_outcomes(passed=1)
    run(pytester, url=url, isp=False).assert_outcomes(passed=1)  # fresh database, dropped after
    engine = create_engine(url)
    with engine.connect() as connection:
        left = connection.execute(
            text("SELECT count(*) FROM pg_database WHERE datname = 'test_test'")
        ).scalar_one()
    engine.dispose()
    assert left == 0


def test_the_same_seed_gives_the_same_data_on_two_different_days(
    pytester: pytest.Pytester,
) -> None:
    stranger(pytester)
    out = pytester.path / "values.jsonl"
    pytester.makepyfile(
        test_app=f"""
        import json
        import time_machine
        from dotmac_factoryboy import DataType

        def test_record(customer, data_generator):
            values = [customer.company, str(data_generator.generate(DataType.DATE)),
                      str(data_generator.generate(DataType.DATETIME))]
            with open({str(out)!r}, "a") as handle:
                handle.write(json.dumps(values) + "\\n")
        """
    )
    pytester.makeconftest(
        """
        import pytest
        import time_machine

        def pytest_addoption(parser):
            parser.addoption("--day")

        @pytest.fixture(autouse=True)
        def _travel(request):
            with time_machine.travel(request.config.getoption("--day"), tick=False):
                yield
        """
    )
    for day in ("2021-03-01", "2033-11-30"):
        run(pytester, "--factory-seed", "77", "--day", day, isp=False).assert_outcomes(passed=1)
    first, second = out.read_text().splitlines()
    assert first == second


FREEZE_PROBE = """
import gc, json

def test_probe(customer, pytestconfig):
    with open(pytestconfig.rootpath / "freeze.json", "w") as handle:
        json.dump(gc.get_freeze_count(), handle)
"""


@pytest.mark.parametrize("setting", ["factory_gc_freeze = true", ""])
def test_what_collection_left_is_frozen_for_the_tests_when_asked(
    pytester: pytest.Pytester, setting: str
) -> None:
    """With ``factory_gc_freeze = true``, objects alive after collection are frozen (skipped by
    the collector's full passes) while the tests run; by default nothing is frozen."""
    stranger(pytester)
    pytester.makeini(f"[pytest]\nfactory_metadata = app:Base\nfactory_modules = app\n{setting}\n")
    pytester.makepyfile(test_probe=FREEZE_PROBE)
    run(pytester, isp=False).assert_outcomes(passed=1)
    frozen = json.loads((pytester.path / "freeze.json").read_text())
    assert (frozen > 10_000) if setting else frozen == 0
