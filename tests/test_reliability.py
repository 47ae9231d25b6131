"""Random operations against a database pre-filled by plain SQL (not factories): creates and
batches with random traits, keywords, ``customize()`` and ``LinkOnly`` to pre-existing and to
created rows, nested registry scopes, ``tenant_context`` switches, partial cleanups, commits and
failing calls, then a final ``cleanup_all()``.

After every step: every pre-existing row is unchanged (a checksum per table), every tracked row is
present, no created row references a row of another tenant (SQL joins over every foreign key of
the created rows); at the end no created row is left. Hypothesis prints a failing run as the
script of its steps. ``--hypothesis-profile=long`` runs many more examples than CI's default.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import factory
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from dotmac_factoryboy import LinkOnly, customize, registry, tenant_context
from dotmac_factoryboy.errors import DotmacFactoryError
from dotmac_factoryboy.isp.factories import (
    AddressFactory,
    CustomerFactory,
    ServiceFactory,
    TenantFactory,
)
from dotmac_factoryboy.isp.models import Address, Customer, Service, Tenant

settings.register_profile(
    "ci",
    max_examples=12,
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

FOREIGN = {"tenants": 10, "addresses": 3000, "customers": 3000, "services": 3990}
"""10 000 rows written with Core, as an application (not the factories) would."""
TABLES = (Tenant, Address, Customer, Service)
CROSS_TENANT = [
    "SELECT COUNT(*) FROM services s JOIN customers c ON s.customer_id = c.id "
    "WHERE s.tenant_id <> c.tenant_id AND s.id > :services",
    "SELECT COUNT(*) FROM customers c JOIN addresses a ON c.service_address_id = a.id "
    "WHERE c.tenant_id <> a.tenant_id AND c.id > :customers",
    "SELECT COUNT(*) FROM customers c JOIN addresses a ON c.billing_address_id = a.id "
    "WHERE c.tenant_id <> a.tenant_id AND c.id > :customers",
]
FIGURES = Path(__file__).parent.parent / "docs" / "reliability-figures.json"
TABLE = FIGURES.with_suffix(".md")
COLUMNS = {
    "operations": "operations run",
    "rows_checked": "foreign rows checked",
    "faults": "faults injected",
    "bad_inputs": "bad inputs tried",
    "rows_lost_or_left": "rows lost or left",
    "cross_tenant_rows": "cross-tenant rows",
}


def prefill(engine: Engine) -> dict[str, int]:
    """The foreign rows, by plain Core inserts; returns each table's highest foreign id."""
    with engine.begin() as connection:
        connection.execute(
            insert(Tenant),
            [{"id": i, "name": f"app tenant {i}", "subdomain": f"app{i}"} for i in range(1, 11)],
        )
        connection.execute(
            insert(Address),
            [
                {
                    "id": i,
                    "street": f"{i} App St",
                    "city": "Appville",
                    "postal_code": "00000",
                    "country": "US",
                    "tenant_id": 1 + i % 10,
                }
                for i in range(1, 3001)
            ],
        )
        connection.execute(
            insert(Customer),
            [
                {
                    "id": i,
                    "customer_number": f"APP-{i:06d}",
                    "name": f"app customer {i}",
                    "email": f"c{i}@app.test",
                    "phone": "555",
                    "tenant_id": 1 + i % 10,
                    "service_address_id": i,
                }
                for i in range(1, 3001)
            ],
        )
        connection.execute(
            insert(Service),
            [
                {
                    "id": i,
                    "customer_id": 1 + i % 3000,
                    "tenant_id": 1 + (1 + i % 3000) % 10,
                    "service_id": f"APP-SVC-{i:06d}",
                    "plan": "app plan",
                    "bandwidth_mbps": 100,
                    "monthly_price": 10,
                }
                for i in range(1, 3991)
            ],
        )
        if engine.dialect.name == "postgresql":  # the app's explicit ids: move the sequences on
            for table in ("tenants", "addresses", "customers", "services"):
                connection.execute(
                    text(f"SELECT setval('{table}_id_seq', (SELECT MAX(id) FROM {table}))")
                )
    return {"tenants": 10, "addresses": 3000, "customers": 3000, "services": 3990}


SUMS = {
    Tenant: ("length(name)", "length(subdomain)"),
    Address: ("length(street)", "length(city)", "tenant_id * id"),
    Customer: ("length(name)", "length(email)", "service_address_id * id", "tenant_id * id"),
    Service: ("customer_id * id", "tenant_id * id", "length(plan)", "bandwidth_mbps"),
}


def checksum(session: Session, table: Any, top: int) -> tuple[Any, ...]:
    """Aggregates over every foreign row of ``table`` (ids up to ``top``): a changed, deleted or
    re-pointed row changes them. One query per table, cheap enough for every step."""
    sums = ", ".join(f"SUM({e})" for e in ("id", *SUMS[table]))
    sql = f"SELECT COUNT(*), {sums} FROM {table.__tablename__} WHERE id <= :top"
    return tuple(int(v or 0) for v in session.execute(text(sql), {"top": top}).one())


def digest(session: Session, table: Any, top: int) -> str:
    """Every column of every foreign row of ``table``: compared at the start and the end."""
    rows = session.execute(select(table.__table__).where(table.id <= top).order_by(table.id)).all()
    return hashlib.sha256(repr([tuple(map(str, r)) for r in rows]).encode()).hexdigest()


def alive(instance: Any) -> bool:
    """Whether a row made earlier in the run is still in the session (cleanups detach it)."""
    return sa_inspect(instance).session is not None


class Injected(Exception):
    """A failure a step injects into a call."""


def failing(*_: Any) -> Any:
    raise Injected("injected by the state machine")


def _failing_batch() -> None:
    cities = iter(["a", "b"])
    AddressFactory.create_batch(
        3, city=factory.LazyFunction(lambda: next(cities, None) or failing())
    )


FAILING = {
    "declaration": lambda: CustomerFactory.create(name=factory.LazyFunction(failing)),
    "after an early write": lambda: ServiceFactory.create(
        plan=factory.LazyAttribute(lambda o: f"for {o.customer.id}"),
        ip_address=factory.LazyAttribute(failing),
    ),
    "batch": _failing_batch,
}


class Operations(RuleBasedStateMachine):
    """The operations; the session, foreign ids and counters are set by the test."""

    session: Session
    top: dict[str, int]
    figures: dict[str, int]

    created = Bundle("created")
    tenants = Bundle("tenants")

    def __init__(self) -> None:
        super().__init__()
        self.scopes = ExitStack()
        self.depth = 0
        self.before = {t: checksum(self.session, t, self.top[t.__tablename__]) for t in TABLES}
        self.digests = {t: digest(self.session, t, self.top[t.__tablename__]) for t in TABLES}
        self.scopes.enter_context(registry.scope())

    def step(self) -> None:
        self.figures["operations"] += 1

    @rule(target=tenants)
    def new_tenant(self) -> Any:
        self.step()
        return TenantFactory.create()

    @rule(
        target=created,
        traits=st.sets(st.sampled_from(["business", "enterprise", "suspended"])),
        name=st.none() | st.text("abcdefgh ", min_size=1, max_size=12),
    )
    def customer(self, traits: set[str], name: str | None) -> Any:
        self.step()
        kwargs: dict[str, Any] = dict.fromkeys(traits, True)
        if name is not None:
            kwargs["name"] = name
        return CustomerFactory.create(**kwargs)

    @rule(
        target=created,
        owner=tenants,
        size=st.integers(1, 3),
        city=st.sampled_from(["Oslo", "Rome"]),
    )
    def customers_in_a_tenant(self, owner: Any, size: int, city: str) -> Any:
        self.step()
        if not alive(owner):
            owner = TenantFactory.create()
        with tenant_context(owner):
            made = CustomerFactory.create_batch(size, customize(Address, city=city))
        assert all(c.tenant_id == owner.id and c.service_address.city == city for c in made)
        return made[0]

    @rule(customer=created, size=st.integers(1, 3), fiber=st.booleans())
    def services_of_a_created_customer(self, customer: Any, size: int, fiber: bool) -> None:
        self.step()
        if not alive(customer):
            return
        made = ServiceFactory.create_batch(size, LinkOnly(customer), fiber=fiber)
        assert {s.tenant_id for s in made} == {customer.tenant_id}

    @rule(foreign_id=st.integers(1, FOREIGN["customers"]))
    def service_of_a_foreign_customer(self, foreign_id: int) -> None:
        self.step()
        customer = self.session.get(Customer, foreign_id)
        service = ServiceFactory.create(LinkOnly(customer))
        assert service.customer_id == foreign_id and service.tenant_id == customer.tenant_id  # type: ignore[union-attr]

    @rule(customer=created)
    def cross_tenant_link_is_refused(self, customer: Any) -> None:
        """Inside another tenant's context, linking a created row of one tenant is refused."""
        self.step()
        if not alive(customer):
            return
        self.figures["bad_inputs"] += 1
        before, tracked = self.counts(), list(registry.instances)
        with pytest.raises(DotmacFactoryError), tenant_context(self.other_tenant(customer)):
            ServiceFactory.create(LinkOnly(customer))
        assert self.counts() == before and registry.instances == tracked

    def other_tenant(self, customer: Any) -> Any:
        """A foreign tenant that is not the customer's (the app's rows: never modified)."""
        return self.session.get(Tenant, 1 if customer.tenant_id != 1 else 2)

    @rule(stage=st.sampled_from(sorted(FAILING)))
    def failing_call(self, stage: str) -> None:
        self.step()
        self.figures["faults"] += 1
        before, tracked = self.counts(), list(registry.instances)
        with pytest.raises(Injected):
            FAILING[stage]()
        assert self.counts() == before, "a failed call left rows"
        assert registry.instances == tracked, "a failed call left tracked rows"

    def counts(self) -> list[int]:
        return [int(self.session.scalar(select(func.count()).select_from(t)) or 0) for t in TABLES]

    @precondition(lambda self: self.depth < 3)
    @rule()
    def open_scope(self) -> None:
        self.step()
        self.scopes.enter_context(registry.scope())
        self.depth += 1

    @precondition(lambda self: self.depth > 0)
    @rule(clean=st.booleans())
    def close_scope(self, clean: bool) -> None:
        self.step()
        if clean:
            registry.cleanup_all()
        self.scopes.close()  # closes every scope; reopen the machine's own
        self.scopes = ExitStack()
        self.scopes.enter_context(registry.scope())
        self.depth = 0

    @rule()
    def cleanup_services(self) -> None:
        self.step()
        ServiceFactory.cleanup()

    @rule()
    def commit(self) -> None:
        self.step()
        self.session.commit()

    @invariant()
    def foreign_rows_are_untouched(self) -> None:
        for table in TABLES:
            top = self.top[table.__tablename__]
            assert checksum(self.session, table, top) == self.before[table], table.__tablename__
            self.figures["rows_checked"] += top

    @invariant()
    def tracked_rows_are_present(self) -> None:
        for instance in registry.instances:
            key = type(instance).id
            found = self.session.scalar(
                select(func.count()).select_from(type(instance)).where(key == instance.id)
            )
            assert found == 1, instance

    @invariant()
    def no_created_row_crosses_tenants(self) -> None:
        self.session.flush()
        for sql in CROSS_TENANT:
            crossing = self.session.scalar(
                text(sql), {k: self.top[k] for k in ("services", "customers") if f":{k}" in sql}
            )
            self.figures["cross_tenant_rows"] += int(crossing or 0)
            assert crossing == 0, sql

    def teardown(self) -> None:
        for table in TABLES:
            assert digest(self.session, table, self.top[table.__tablename__]) == self.digests[table]
        registry.cleanup_all()
        self.scopes.close()
        registry.cleanup_all()  # what closing handed to the test's own scope
        for table in TABLES:
            name = table.__tablename__
            left = self.session.scalar(
                select(func.count()).select_from(table).where(table.id > self.top[name])
            )
            self.figures["rows_lost_or_left"] += int(left or 0)
            assert left == 0, f"{left} created {name} rows left"


def test_random_operations_keep_every_invariant(session: Session, engine: Engine) -> None:
    top = prefill(engine)
    figures = {
        "operations": 0,
        "rows_checked": 0,
        "faults": 0,
        "bad_inputs": 0,
        "cross_tenant_rows": 0,
        "rows_lost_or_left": 0,
    }

    class Machine(Operations):
        pass

    Machine.session, Machine.top, Machine.figures = session, top, figures
    run_state_machine_as_test(Machine)
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL"}
    mariadb = getattr(engine.dialect, "is_mariadb", False)
    _record("MariaDB" if mariadb else names.get(engine.dialect.name, engine.dialect.name), figures)


def _record(backend: str, figures: dict[str, int]) -> None:
    """Keep this run's figures for the reliability page (merged per backend, rendered as its
    table)."""
    try:
        known = json.loads(FIGURES.read_text())
    except (OSError, ValueError):  # none yet, or another run is writing it
        known = {}
    known[backend] = figures
    FIGURES.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    lines = [
        "| backend | " + " | ".join(COLUMNS.values()) + " |",
        "| --- | " + " | ".join("---:" for _ in COLUMNS) + " |",
    ]
    for name, values in sorted(known.items()):
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:,}" for k in COLUMNS) + " |")
    TABLE.write_text("\n".join(lines) + "\n")
