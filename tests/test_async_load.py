"""50 asyncio tasks at once, each with its own AsyncSession and tenant, and 8 threads, each with
its own Session and tenant, creating ISP customers with services and cleaning them up: no
cross-tenant row, tracking exact per task and thread, nothing left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from dotmac_factoryboy import registry, tenant_context
from dotmac_factoryboy.engines import async_url, sqlite_savepoints
from dotmac_factoryboy.isp.factories import CustomerFactory, ServiceFactory, TenantFactory
from dotmac_factoryboy.isp.models import Address, Customer, Service, Tenant

from .conftest import wipe

TASKS = 50
CUSTOMERS = 3
SERVICES = 2  # per customer

CROSS_TENANT = text(
    """
    SELECT (SELECT COUNT(*) FROM services s JOIN customers c ON s.customer_id = c.id
            WHERE s.tenant_id <> c.tenant_id)
         + (SELECT COUNT(*) FROM customers c JOIN addresses a ON c.service_address_id = a.id
            WHERE c.tenant_id <> a.tenant_id)
    """
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def many(engine: Engine) -> AsyncIterator[AsyncEngine]:
    """This backend through its async driver, one connection per task (no pool to wait on)."""
    wipe(engine)
    url = async_url(engine.url)
    sqlite = url.get_backend_name() == "sqlite"
    # SQLite has one writer at a time: the tasks queue for its lock instead of failing
    made = create_async_engine(
        url, poolclass=NullPool, connect_args={"timeout": 300} if sqlite else {}
    )
    if sqlite:
        sqlite_savepoints(made.sync_engine, "BEGIN IMMEDIATE")
    yield made
    await made.dispose()
    wipe(engine)


async def rows(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def one_task(made: AsyncEngine, n: int) -> dict[str, int]:
    async with AsyncSession(made, expire_on_commit=False) as session:
        with registry.bound(session), registry.scope():  # type: ignore[arg-type]
            tenant = await TenantFactory.create_async(name=f"tenant {n}")
            with tenant_context(tenant):
                customers = await CustomerFactory.create_batch_async(CUSTOMERS)
                services = [
                    await ServiceFactory.create_async(customer=customer)
                    for customer in customers
                    for _ in range(SERVICES)
                ]
            await session.commit()
            mine = [tenant, *customers, *(c.service_address for c in customers), *services]
            tracked = registry.instances
            assert {id(i) for i in tracked} == {id(i) for i in mine}  # nothing lost or foreign
            assert len(tracked) == len(mine)
            assert all(i.tenant_id == tenant.id for i in mine if i is not tenant)
            assert await session.scalar(CROSS_TENANT) == 0
            report = await registry.cleanup_all_async()
            assert registry.instances == []
            return report.deleted


@pytest.mark.anyio
async def test_fifty_tasks_each_with_its_session_and_tenant(many: AsyncEngine) -> None:
    reports = await asyncio.gather(*(one_task(many, n) for n in range(TASKS)))
    expected = {
        "tenants": 1,
        "customers": CUSTOMERS,
        "addresses": CUSTOMERS,
        "services": CUSTOMERS * SERVICES,
    }
    assert all(report == expected for report in reports)
    async with AsyncSession(many) as session:
        assert [await rows(session, m) for m in (Service, Customer, Address, Tenant)] == [0] * 4


THREADS = 8
PER_THREAD = 1000


def test_eight_threads_each_with_its_session_and_tenant(engine: Engine) -> None:
    """8 threads, each creating 1 000 services (with their customers and addresses) in a tenant
    of its own: tracking is exact per thread and cleanup removes exactly those rows."""
    wipe(engine)
    url = engine.url
    sqlite = url.get_backend_name() == "sqlite"
    writers = create_engine(
        url, poolclass=NullPool, connect_args={"timeout": 300} if sqlite else {}
    )
    if sqlite:  # one writer at a time: the threads queue for the lock
        sqlite_savepoints(writers, "BEGIN IMMEDIATE")

    def work(n: int) -> dict[str, int]:
        with Session(writers) as session, registry.bound(session), registry.scope():
            tenant = TenantFactory.create(name=f"thread {n}")
            with tenant_context(tenant):
                services = ServiceFactory.create_batch(PER_THREAD)
            session.commit()
            mine = [tenant, *services, *(s.customer for s in services)]
            mine += [s.customer.service_address for s in services]
            assert {id(i) for i in registry.instances} == {id(i) for i in mine}
            assert all(i.tenant_id == tenant.id for i in mine if i is not tenant)
            return registry.cleanup_all().deleted

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            reports = list(pool.map(work, range(THREADS)))
        expected = {t: PER_THREAD for t in ("services", "customers", "addresses")} | {"tenants": 1}
        assert reports == [expected] * THREADS
        with Session(writers) as session:
            left = [
                session.scalar(select(func.count()).select_from(m))
                for m in (Service, Customer, Address, Tenant)
            ]
        assert left == [0, 0, 0, 0]
    finally:
        writers.dispose()
        wipe(engine)
