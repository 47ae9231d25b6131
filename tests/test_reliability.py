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
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    initialize,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, Table, func, insert, select, text
from sqlalchemy.orm import Session

from dotmac_factoryboy import (
    LinkOnly,
    allow_cross_tenant,
    customize,
    registry,
    tenant_context,
)
from dotmac_factoryboy.errors import DotmacFactoryError
from dotmac_factoryboy.isp.factories import CustomerFactory, ServiceFactory, TenantFactory
from dotmac_factoryboy.isp.models import Address, Base, Customer, Service, Tenant

from .faults import FAULTS, TAKEN
from .misuse_catalogue import CASES, attempt, namespace
from .reliability import Run, alive, backend_name, new_figures, record, tenant_crossings

FOREIGN = {"tenants": 10, "addresses": 3000, "customers": 3000, "services": 3990}
"""10 000 rows written with Core, as an application (not the factories) would."""
TABLES = (Tenant, Address, Customer, Service)


def tenant_id_column(table: Table) -> str | None:
    return "tenant_id" if "tenant_id" in table.c else None


CROSS_TENANT = tenant_crossings(Base.metadata, tenant_id_column)
"""Every foreign key of the ISP schema between two tenant-scoped rows, as a SQL join."""
MISUSES = [
    case
    for case in CASES
    if not any(word in case.setup + case.code for word in ("other_session_row", "seed(", "delete"))
]
"""The catalogue's misuses that leave no trace outside the call: not another session's rows,
not the command line (its own database), not rows the setup deletes (still tracked)."""


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
                    "customer_number": TAKEN if i == 1 else f"APP-{i:06d}",
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


class Operations(Run):
    """The operations on the ISP schema; the session, foreign ids and counters are set by the
    test."""

    top: dict[str, int]
    names: dict[str, Any]
    before: dict[Any, tuple[Any, ...]]
    digests: dict[Any, str]
    registries = (registry,)
    crossings = CROSS_TENANT

    created = Bundle("created")
    tenants = Bundle("tenants")

    def prefill(self, engine: Any) -> None:
        prefill(engine)

    def check_foreign(self, final: bool = False) -> None:
        for table in TABLES:
            top = self.top[table.__tablename__]
            assert checksum(self.session, table, top) == self.before[table], table.__tablename__
            self.figures["rows_checked"] += top
            if final:
                assert digest(self.session, table, top) == self.digests[table]

    def created_left(self) -> dict[str, int]:
        return {
            table.__tablename__: int(
                self.session.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(table.id > self.top[table.__tablename__])
                )
                or 0
            )
            for table in TABLES
        }

    @initialize(target=created)
    def first_customer(self) -> Any:
        """A created row from the start, so the rules that take one can be drawn at once."""
        self.step()
        return CustomerFactory.create()

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

        def link_into_another_tenant() -> None:
            with tenant_context(self.other_tenant(customer)):
                ServiceFactory.create(LinkOnly(customer))

        self.refused(link_into_another_tenant, DotmacFactoryError)

    @rule(customer=created)
    def allowed_cross_tenant_link(self, customer: Any) -> None:
        """Inside ``allow_cross_tenant()`` a service may name another tenant than its customer's:
        the one kind of crossing the tenant check expects (and counts)."""
        self.step()
        if not alive(customer):
            return
        with allow_cross_tenant():
            service = ServiceFactory.create(LinkOnly(customer), tenant=self.other_tenant(customer))
        assert service.tenant_id != customer.tenant_id
        self.allowed.append(service)

    def other_tenant(self, customer: Any) -> Any:
        """A foreign tenant that is not the customer's (the app's rows: never modified)."""
        return self.session.get(Tenant, 1 if customer.tenant_id != 1 else 2)

    @rule(stage=st.sampled_from(sorted(FAULTS)))
    def failing_call(self, stage: str) -> None:
        self.step()
        self.figures["faults"] += 1
        self.refused(FAULTS[stage], Exception)

    @rule(case=st.sampled_from(MISUSES))
    def misuse(self, case: Any) -> None:
        """A case of the docs' bad-input catalogue, in the middle of the run."""
        self.step()
        self.figures["bad_inputs"] += 1
        tracked = len(registry.instances)
        raised, untouched = attempt(case, self.names, self.session)
        assert case.raises in {c.__name__ for c in type(raised).__mro__}, raised
        assert untouched, f"{case.misuse}: rows were written"
        assert len(registry.instances) >= tracked

    @rule()
    def cleanup_services(self) -> None:
        self.step()
        ServiceFactory.cleanup()


def test_random_operations_keep_every_invariant(
    session: Session, engine: Engine, tmp_path: Path
) -> None:
    top = prefill(engine)
    figures = new_figures()

    class Machine(Operations):
        pass

    Machine.before = {t: checksum(session, t, top[t.__tablename__]) for t in TABLES}
    Machine.digests = {t: digest(session, t, top[t.__tablename__]) for t in TABLES}
    with namespace(session, tmp_path) as names:
        Machine.session, Machine.top, Machine.figures, Machine.names = session, top, figures, names
        run_state_machine_as_test(Machine)
    record(f"{backend_name(engine)}, ISP schema", figures)
