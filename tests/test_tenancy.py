"""TenantIsolatedFactory: one tenant per build tree, hard sources first, then ambient defaults."""

from __future__ import annotations

import asyncio
import threading

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from dotmac_factoryboy import (
    LinkOnly,
    allow_cross_tenant,
    current_tenant_id,
    registry,
    tenant_context,
)
from dotmac_factoryboy.errors import TenantIsolationError
from dotmac_factoryboy.isp.factories import (
    AddressFactory,
    CustomerFactory,
    InvoiceFactory,
    ServiceFactory,
    TenantFactory,
)
from dotmac_factoryboy.isp.models import (
    Address,
    BillingAccount,
    Customer,
    Invoice,
    Service,
    Tenant,
)

from .conftest import count

TENANT_SCOPED = (Address, Customer, Service, BillingAccount, Invoice)


def tenants_in_db(session: Session, model: type) -> set[int]:
    return set(session.execute(select(model.tenant_id)).scalars())  # type: ignore[attr-defined]


@pytest.fixture
def isolated_customer_factory() -> type[CustomerFactory]:
    """A throwaway subclass, as the pytest plugin hands out, so factory-level defaults never leak."""
    return type("Factory", (CustomerFactory,), {})


def test_new_tenant_is_made_once_per_tree_and_shared(session: Session) -> None:
    invoice = InvoiceFactory.create()
    assert count(session, Tenant) == 1
    for model in (Address, Customer, BillingAccount, Invoice):
        assert tenants_in_db(session, model) == {invoice.tenant_id}


def test_explicit_keyword_decides_the_tree(session: Session) -> None:
    tenant = TenantFactory.create()
    ServiceFactory.create(tenant_id=tenant.id)
    ServiceFactory.create(tenant=tenant)
    assert count(session, Tenant) == 1
    assert all(tenants_in_db(session, m) == {tenant.id} for m in (Service, Customer, Address))


def test_passed_in_instance_decides_the_tree(session: Session) -> None:
    customer = CustomerFactory.create()
    service = ServiceFactory.create(customer=customer)
    assert service.tenant_id == customer.tenant_id and count(session, Tenant) == 1


def test_linked_customer_decides_three_levels(session: Session) -> None:
    customer = CustomerFactory.create()
    tenants_before = count(session, Tenant)
    invoice = InvoiceFactory.create(LinkOnly(customer))
    assert invoice.billing_account.customer is customer
    assert count(session, Tenant) == tenants_before == 1
    assert (
        tenants_in_db(session, Invoice)
        == tenants_in_db(session, BillingAccount)
        == {customer.tenant_id}
    )


def test_conflicting_hard_sources_fail_before_any_insert(session: Session) -> None:
    a, b = TenantFactory.create(name="Alpha"), TenantFactory.create(name="Beta")
    customer = CustomerFactory.create(tenant=a)
    rows_before = {m: count(session, m) for m in TENANT_SCOPED}
    with pytest.raises(TenantIsolationError) as info:
        ServiceFactory.create(tenant_id=b.id, customer=customer)
    message = str(info.value)
    assert f"tenant {a.id}" in message and f"tenant {b.id}" in message
    assert "ServiceFactory" in message and "customer" in message and "tenant_id" in message
    with pytest.raises(TenantIsolationError):
        InvoiceFactory.create(tenant=b, billing_account__customer=customer)
    assert {m: count(session, m) for m in TENANT_SCOPED} == rows_before


def test_factory_level_default_then_context_then_new(
    session: Session, isolated_customer_factory: type[CustomerFactory]
) -> None:
    a, b = TenantFactory.create(), TenantFactory.create()
    isolated_customer_factory.tenant_id = a.id
    with tenant_context(b):
        assert isolated_customer_factory.create().tenant_id == a.id
        isolated_customer_factory.tenant_id = None
        assert isolated_customer_factory.create().tenant_id == b.id
    fresh = isolated_customer_factory.create()
    assert fresh.tenant_id not in {a.id, b.id} and count(session, Tenant) == 3
    assert CustomerFactory.tenant_id is None


def test_explicit_keyword_beats_ambient_context(session: Session) -> None:
    a, b = TenantFactory.create(), TenantFactory.create()
    with tenant_context(a):
        customer = CustomerFactory.create(tenant_id=b.id)
    assert customer.tenant_id == b.id and customer.service_address.tenant_id == b.id


def test_tenant_context_nests_and_decorates(session: Session) -> None:
    a, b = TenantFactory.create(), TenantFactory.create()
    assert current_tenant_id() is None
    with tenant_context(a):
        with tenant_context(b.id):
            assert current_tenant_id() == b.id
            assert CustomerFactory.create().tenant_id == b.id
        assert current_tenant_id() == a.id

    @tenant_context(b)
    def make() -> Customer:
        return CustomerFactory.create()

    assert make().tenant_id == b.id and current_tenant_id() is None


def test_build_sets_tenants_without_writing(session: Session) -> None:
    service = ServiceFactory.build()
    assert service.tenant is service.customer.tenant is service.customer.service_address.tenant
    assert service.tenant.id is None
    with tenant_context(41):
        assert ServiceFactory.build().customer.tenant_id == 41
    assert count(session, Tenant) == 0 and count(session, Service) == 0


def test_batches_get_one_tenant_each_unless_a_source_is_given(session: Session) -> None:
    batch = CustomerFactory.create_batch(3)
    assert len({c.tenant_id for c in batch}) == 3
    tenant = TenantFactory.create()
    shared = CustomerFactory.create_batch(4, tenant=tenant)
    assert {c.tenant_id for c in shared} == {tenant.id}
    with tenant_context(tenant):
        assert {c.tenant_id for c in CustomerFactory.create_batch(2)} == {tenant.id}


def test_models_without_the_tenant_column_are_untouched(session: Session) -> None:
    with tenant_context(999):
        tenant = TenantFactory.create()
    assert not hasattr(tenant, "tenant_id") and count(session, Tenant) == 1


def test_allow_cross_tenant_builds_invalid_data_on_purpose(session: Session) -> None:
    a, b = TenantFactory.create(), TenantFactory.create()
    customer = CustomerFactory.create(tenant=a)
    with allow_cross_tenant():
        service = ServiceFactory.create(tenant_id=b.id, customer=customer)
    assert (service.tenant_id, service.customer.tenant_id) == (b.id, a.id)


def test_cross_tenant_address_is_refused(session: Session) -> None:
    a, b = TenantFactory.create(), TenantFactory.create()
    address = AddressFactory.create(tenant=b)
    with pytest.raises(TenantIsolationError, match="service_address"):
        CustomerFactory.create(tenant=a, service_address=address)


def test_threads_each_keep_their_tenant(engine: Engine, session: Session) -> None:
    tenants = TenantFactory.create_batch(8)
    session.commit()
    tenant_ids = [t.id for t in tenants]
    errors: list[BaseException] = []
    made: dict[int, list[int]] = {}
    start = threading.Barrier(len(tenant_ids))

    def work(tenant_id: int) -> None:
        own = Session(engine)
        try:
            with registry.bound(own), tenant_context(tenant_id):
                start.wait()
                made[tenant_id] = [CustomerFactory.create().id for _ in range(3)]
                own.commit()
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(t,)) for t in tenant_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    session.commit()  # end our snapshot so MariaDB's REPEATABLE READ sees the threads' rows
    for tenant_id, ids in made.items():
        rows = session.execute(select(Customer.tenant_id).where(Customer.id.in_(ids))).scalars()
        assert set(rows) == {tenant_id}
    assert count(session, Customer) == 24 and count(session, Tenant) == 8


def test_asyncio_tasks_each_keep_their_tenant(session: Session) -> None:
    tenants = TenantFactory.create_batch(50)

    async def main() -> dict[int, list[int]]:
        go = asyncio.Event()

        async def work(tenant_id: int) -> tuple[int, list[int]]:
            with tenant_context(tenant_id):
                ids = [CustomerFactory.create().id]
                await go.wait()  # every task is now inside its own context
                ids.append(CustomerFactory.create().id)
                return tenant_id, ids

        tasks = [asyncio.create_task(work(t.id)) for t in tenants]
        await asyncio.sleep(0)
        go.set()
        return dict(await asyncio.gather(*tasks))

    made = asyncio.run(main())
    for tenant_id, ids in made.items():
        rows = session.execute(select(Customer.tenant_id).where(Customer.id.in_(ids))).scalars()
        assert set(rows) == {tenant_id}
    assert count(session, Customer) == 100 and count(session, Tenant) == 50


def test_foreign_key_ids_link_rows_and_decide_the_tenant(session: Session) -> None:
    """The DotMac style: ``service_factory.create(customer_id=customer.id)``."""
    customer = CustomerFactory.create(type="enterprise")
    service = ServiceFactory.create(customer_id=customer.id, service_type="tv")
    session.expire_all()
    assert service.customer_id == customer.id and service.tenant_id == customer.tenant_id
    assert count(session, Customer) == 1 and count(session, Tenant) == 1
    other = TenantFactory.create()
    with pytest.raises(TenantIsolationError, match="customer_id="):
        ServiceFactory.create(customer_id=customer.id, tenant_id=other.id)
