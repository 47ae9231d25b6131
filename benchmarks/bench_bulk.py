"""create_batch of ISP customers (with their addresses) against factory_boy, polyfactory and
SQLAlchemy Core, side by side in one process, on SQLite and on PostgreSQL and MariaDB when
DOTMAC_TEST_POSTGRES_URL / DOTMAC_TEST_MARIADB_URL are set.

Writes medians and ratios to benchmarks/results.json and benchmarks/bulk.md (shown on the docs'
performance page), with the machine and versions. Timings are never asserted in tests.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import time
import tracemalloc
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import factory
from factory.alchemy import SQLAlchemyModelFactory
from isp_database import backend_urls, fresh_engine
from sqlalchemy import delete, insert, text
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry
from dotmac_factoryboy.faking import unweighted_faker
from dotmac_factoryboy.isp.factories import CustomerFactory, TenantFactory
from dotmac_factoryboy.isp.models import Address, Base, Customer

HERE = Path(__file__).parent


def vanilla(session: Session, tenant: int) -> Any:
    """The ISP declarations on plain factory_boy, flush per object (its documented setting)."""

    class AddressFactory(SQLAlchemyModelFactory):  # type: ignore[misc]
        class Meta:
            model = Address
            sqlalchemy_session = session
            sqlalchemy_session_persistence = "flush"

        street = factory.Faker("street_address")
        city = factory.Faker("city")
        postal_code = factory.Faker("postcode")
        country = "US"
        tenant_id = tenant

    class VanillaCustomerFactory(SQLAlchemyModelFactory):  # type: ignore[misc]
        class Meta:
            model = Customer
            sqlalchemy_session = session
            sqlalchemy_session_persistence = "flush"

        customer_number = factory.Sequence(lambda n: f"V-{n + 1:07d}")
        name = factory.Faker("name")
        email = factory.Faker("email")
        phone = factory.Faker("phone_number")
        type = "residential"
        status = "active"
        service_address = factory.SubFactory(AddressFactory)
        tenant_id = tenant

    return VanillaCustomerFactory


def polyfactory_factory(session: Session, tenant: Any) -> Any:
    """polyfactory's SQLAlchemyFactory for the same models, fed by the same Faker providers."""
    from polyfactory import Use
    from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory as Poly

    fake = unweighted_faker(None)
    numbers = itertools.count(1)
    the_tenant = tenant

    class AddressPoly(Poly[Address]):
        __set_relationships__ = False
        id = None
        tenant_id = the_tenant.id
        street = Use(fake.street_address)
        city = Use(fake.city)
        postal_code = Use(fake.postcode)
        country = "US"

    class CustomerPoly(Poly[Customer]):
        __session__ = session
        __set_relationships__ = True
        id = None
        tenant = Use(lambda: the_tenant)
        tenant_id = the_tenant.id
        customer_number = Use(lambda: f"P-{next(numbers):07d}")
        name = Use(fake.name)
        email = Use(fake.email)
        phone = Use(fake.phone_number)
        type = "residential"
        status = "active"
        services = Use(list)
        billing_account = None
        billing_address = None
        service_address = Use(AddressPoly.build)

    return CustomerPoly


def core_insert(session: Session, tenant_id: int, size: int, *, keys: bool = False) -> None:
    """The limit: rows made by the same Faker calls (unweighted), inserted with Core; with
    ``keys``, the customers' generated keys come back too (ordered RETURNING), as rows mode
    must hand them back."""
    fake = unweighted_faker(None)
    addresses = [
        {
            "street": fake.street_address(),
            "city": fake.city(),
            "postal_code": fake.postcode(),
            "country": "US",
            "tenant_id": tenant_id,
        }
        for _ in range(size)
    ]
    returned = session.execute(
        insert(Address).returning(Address.id, sort_by_parameter_order=True), addresses
    )
    ids = [row[0] for row in returned]
    customers = [
        {
            "customer_number": f"C-{n + 1:07d}",
            "name": fake.name(),
            "email": fake.email(),
            "phone": fake.phone_number(),
            "type": "residential",
            "status": "active",
            "service_address_id": ids[n],
            "tenant_id": tenant_id,
        }
        for n in range(size)
    ]
    statement = insert(Customer)
    if keys:
        statement = statement.returning(Customer.id, sort_by_parameter_order=True)
    result = session.execute(statement, customers)
    if keys:
        result.all()
    session.flush()


def copy_insert(session: Session, tenant_id: int, size: int) -> None:
    """PostgreSQL's limit: core_insert's rows (the same Faker calls), the addresses' keys drawn
    from their sequence, both tables written with psycopg's COPY."""
    fake = unweighted_faker(None)
    addresses = [
        (fake.street_address(), fake.city(), fake.postcode(), "US", tenant_id) for _ in range(size)
    ]
    connection = session.connection()
    drawn = connection.execute(
        text(
            "SELECT nextval(pg_get_serial_sequence('addresses', 'id')) FROM generate_series(1, :n)"
        ),
        {"n": size},
    )
    ids = sorted(key for (key,) in drawn)
    customers = [
        (f"C-{n + 1:07d}", fake.name(), fake.email(), fake.phone_number(), ids[n], tenant_id)
        for n in range(size)
    ]
    raw = connection.connection.driver_connection
    with raw.cursor() as cursor:
        columns = "id, street, city, postal_code, country, tenant_id"
        with cursor.copy(f"COPY addresses ({columns}) FROM STDIN") as copy:
            for key, address in zip(ids, addresses, strict=True):
                copy.write_row((key, *address))
        columns = "customer_number, name, email, phone, service_address_id, tenant_id, type, status"
        with cursor.copy(f"COPY customers ({columns}) FROM STDIN") as copy:
            for customer in customers:
                copy.write_row((*customer, "residential", "active"))
    session.flush()


def factory_boy_floor(session: Session, tenant_id: int, size: int) -> None:
    """Rows mode's floor with these declarations: factory_boy's own evaluation of the same fields
    (``stub_batch``: a Sequence, the same unweighted Faker calls through LazyFunction, a
    SubFactory; no model instances, no tenant rules), then core_insert's statements."""
    fake = unweighted_faker(None)
    the_tenant = tenant_id

    class AddressStub(factory.StubFactory):  # type: ignore[misc]
        street = factory.LazyFunction(fake.street_address)
        city = factory.LazyFunction(fake.city)
        postal_code = factory.LazyFunction(fake.postcode)
        country = "US"
        tenant_id = the_tenant

    class CustomerStub(factory.StubFactory):  # type: ignore[misc]
        customer_number = factory.Sequence(lambda n: f"S-{n + 1:07d}")
        name = factory.LazyFunction(fake.name)
        email = factory.LazyFunction(fake.email)
        phone = factory.LazyFunction(fake.phone_number)
        type = "residential"
        status = "active"
        service_address = factory.SubFactory(AddressStub)
        tenant_id = the_tenant

    stubs = CustomerStub.stub_batch(size)
    returned = session.execute(
        insert(Address).returning(Address.id, sort_by_parameter_order=True),
        [vars(s.service_address) for s in stubs],
    )
    customers = [
        {**{k: v for k, v in vars(s).items() if k != "service_address"}, "service_address_id": key}
        for s, (key,) in zip(stubs, returned, strict=True)
    ]
    session.execute(insert(Customer), customers)
    session.flush()


def orm_by_hand(session: Session, tenant_id: int, size: int) -> None:
    """The ORM's own floor: instances made by hand from the same Faker calls, one flush."""
    fake = unweighted_faker(None)
    objects: list[Any] = []
    for n in range(size):
        address = Address(
            street=fake.street_address(),
            city=fake.city(),
            postal_code=fake.postcode(),
            country="US",
            tenant_id=tenant_id,
        )
        customer = Customer(
            customer_number=f"H-{n + 1:07d}",
            name=fake.name(),
            email=fake.email(),
            phone=fake.phone_number(),
            type="residential",
            status="active",
            service_address=address,
            tenant_id=tenant_id,
        )
        objects += (address, customer)
    session.add_all(objects)
    session.flush()


def reset(session: Session) -> None:
    """Remove the customers and addresses a run made (untimed)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("TRUNCATE customers, addresses CASCADE"))
    else:
        session.execute(delete(Customer))
        session.execute(delete(Address))
    session.commit()
    session.expunge_all()


def timed(session: Session, run: Callable[[], object]) -> float:
    """Seconds for one run inside a throwaway tracking scope; its rows are removed, untimed."""
    with registry.scope() as scope:
        start = time.perf_counter()
        run()
        session.commit()
        elapsed = time.perf_counter() - start
        registry.forget(scope)
    reset(session)
    return elapsed


def measure(url: str, size: int, repeats: int) -> dict[str, float]:
    engine = fresh_engine(url)
    session = Session(engine)
    with registry.bound(session):
        tenant = TenantFactory.create()
        session.commit()
        tenant_id = tenant.id
        runs: dict[str, Callable[[], object]] = {
            "dotmac_factoryboy create_batch": lambda: CustomerFactory.create_batch(
                size, tenant=tenant
            ),
            "dotmac_factoryboy insert_batch (rows mode)": lambda: CustomerFactory.insert_batch(
                size, tenant=tenant
            ),
            "factory_boy (flush per object)": lambda: vanilla(session, tenant_id).create_batch(
                size
            ),
            "SQLAlchemy Core insert (same Faker calls)": lambda: core_insert(
                session, tenant_id, size
            ),
            "SQLAlchemy Core insert returning the keys (same Faker calls)": lambda: core_insert(
                session, tenant_id, size, keys=True
            ),
            "factory_boy stub_batch of the same fields + Core insert": lambda: factory_boy_floor(
                session, tenant_id, size
            ),
            "SQLAlchemy ORM by hand (same Faker calls, one flush)": lambda: orm_by_hand(
                session, tenant_id, size
            ),
        }
        if session.get_bind().dialect.name == "postgresql":
            runs["psycopg COPY (same Faker calls, keys from the sequence)"] = lambda: copy_insert(
                session, tenant_id, size
            )
        try:
            poly = polyfactory_factory(session, tenant)
            runs["polyfactory create_batch_sync"] = lambda: poly.create_batch_sync(size)
        except ImportError:
            print("polyfactory is not installed: its case is skipped")
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(repeats):
            for name, run in runs.items():
                times[name].append(timed(session, run))
    session.close()
    Base.metadata.drop_all(engine)
    engine.dispose()
    return {name: statistics.median(values) for name, values in times.items()}


def scale(url: str, sizes: list[int]) -> list[dict[str, float]]:
    """create_batch(n) time (untraced) and peak traced memory (a second, traced run: tracing
    slows Python several times), to show both grow linearly with n."""
    engine = fresh_engine(url)
    rows = []
    with Session(engine) as session, registry.bound(session):
        tenant = TenantFactory.create()
        session.commit()

        def run(size: int, traced: bool) -> tuple[float, float]:
            with registry.scope() as scope:
                if traced:
                    tracemalloc.start()
                start = time.perf_counter()
                CustomerFactory.create_batch(size, tenant=tenant)
                session.commit()
                elapsed = time.perf_counter() - start
                peak = tracemalloc.get_traced_memory()[1] if traced else 0
                tracemalloc.stop()
                registry.forget(scope)
            reset(session)
            return elapsed, peak

        for size in sizes:
            seconds, _ = run(size, traced=False)
            _, peak = run(size, traced=True)
            rows.append({"n": size, "seconds": seconds, "peak_mib": peak / 2**20})
            print(f"scale {size}: {seconds:.1f} s, {peak / 2**20:.0f} MiB", flush=True)
    Base.metadata.drop_all(engine)
    engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--scale", type=int, nargs="*", default=[], help="PostgreSQL sizes")
    args = parser.parse_args()
    urls = backend_urls()
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            **{p: version(p) for p in ("SQLAlchemy", "factory_boy", "Faker")},
        },
        "size": args.size,
        "repeats": args.repeats,
        "backends": {},
    }
    lines = [
        f"`create_batch({args.size})` of ISP customers with their addresses, one tenant, median "
        f"of {args.repeats}, all cases side by side in one run (Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs). Ratio = that case's time / "
        "dotmac_factoryboy's.",
        "",
        "| backend | case | median s | time vs dotmac_factoryboy |",
        "| --- | --- | ---: | ---: |",
    ]
    for backend, url in urls.items():
        medians = measure(url, args.size, args.repeats)
        ours = medians["dotmac_factoryboy create_batch"]
        results["backends"][backend] = {
            name: {"median_s": seconds, "ratio_to_dotmac": seconds / ours}
            for name, seconds in medians.items()
        }
        for name, seconds in medians.items():
            line = f"| {backend} | {name} | {seconds:.2f} | {seconds / ours:.2f}x |"
            lines.append(line)
            print(line, flush=True)
    postgres = os.environ.get("DOTMAC_TEST_POSTGRES_URL")
    if args.scale and postgres:
        results["scale_postgresql"] = scale(postgres, args.scale)
        lines += [
            "",
            "| PostgreSQL create_batch(n) | seconds | µs per customer | peak traced MiB | "
            "KiB per customer |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        lines += [
            f"| {r['n']} | {r['seconds']:.1f} | {r['seconds'] / r['n'] * 1e6:.0f} | "
            f"{r['peak_mib']:.0f} | {r['peak_mib'] * 1024 / r['n']:.1f} |"
            for r in results["scale_postgresql"]
        ]
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "bulk.md").write_text("\n".join([*lines, ""]))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
