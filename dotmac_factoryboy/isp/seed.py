"""The ISP domain's ``seed_tenant`` hook: one realistic tenant per call, all through the factories.

Staff; residential, business and enterprise customers (some suspended); one to three services
each; a billing account; 3 to 12 months of invoices (paid, open, overdue) with their payments;
routers and ONTs linked to internet services; tickets with assignees and sub-tickets. Every choice
comes from ``ctx.random``, every date from ``ctx.as_of``: the same seed gives the same tenant.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import factory

from ..seeding import TenantSeed
from ..tenancy import tenant_context
from .factories import (
    AddressFactory,
    BillingAccountFactory,
    CustomerFactory,
    DeviceFactory,
    InvoiceFactory,
    PaymentFactory,
    ServiceFactory,
    TenantFactory,
    TicketFactory,
    UserFactory,
)
from .models import Customer, Service

__all__ = ["FACTORIES", "seed_tenant"]

FACTORIES = (
    TenantFactory,
    AddressFactory,
    UserFactory,
    CustomerFactory,
    ServiceFactory,
    BillingAccountFactory,
    InvoiceFactory,
    PaymentFactory,
    DeviceFactory,
    TicketFactory,
)
PRICES = {"internet": Decimal("49.99"), "fiber": Decimal("89.99"), "phone": Decimal("19.99")}


def each(values: list[Any]) -> Any:
    """One value per row of a batch, in order (a batch must use them all)."""
    return factory.Iterator(values, cycle=False)


def seed_tenant(ctx: TenantSeed) -> None:
    """Seed one tenant numbered ``ctx.index`` with about ``ctx.customers`` customers."""
    rng = ctx.random
    with ctx.stage("tenant"):
        created = dt.datetime.combine(ctx.as_of, dt.time(9)) - dt.timedelta(
            days=rng.randint(400, 900)
        )
        tenant = TenantFactory.create(subdomain=f"tenant{ctx.index + 1:04d}", created_at=created)
    with tenant_context(tenant):
        with ctx.stage("staff"):
            staff = _staff(ctx)
        with ctx.stage("customers"):
            customers = _customers(ctx)
        with ctx.stage("services"):
            services = _services(ctx, customers)
        with ctx.stage("billing"):
            accounts = BillingAccountFactory.create_batch(len(customers), customer=each(customers))
        with ctx.stage("invoices"):
            paid = _invoices(ctx, accounts, services)
        with ctx.stage("payments"):
            _payments(ctx, paid)
        with ctx.stage("devices"):
            _devices(ctx, services)
        with ctx.stage("tickets"):
            _tickets(ctx, customers, staff)


def _staff(ctx: TenantSeed) -> list[Any]:
    count = max(3, ctx.customers // 100)
    roles = ["admin"] + [
        ctx.random.choice(["support", "support", "technician"]) for _ in range(count - 1)
    ]
    return UserFactory.create_batch(count, role=each(roles))


def _customers(ctx: TenantSeed) -> list[Customer]:
    """Residential, business and enterprise customers (5% suspended), a batch per kind."""
    rng, made = ctx.random, []
    kinds = rng.choices(
        ["residential", "business", "enterprise"], weights=[80, 15, 5], k=ctx.customers
    )
    for kind in ("residential", "business", "enterprise"):
        size = kinds.count(kind)
        suspended = sum(rng.random() < 0.05 for _ in range(size))
        traits = {} if kind == "residential" else {kind: True, "with_billing_address": True}
        made += CustomerFactory.create_batch(size - suspended, **traits)
        made += CustomerFactory.create_batch(suspended, suspended=True, **traits)
    return made


def _services(ctx: TenantSeed, customers: list[Customer]) -> dict[int, list[Service]]:
    """One to three services per customer: internet (40% fiber), then phone, then TV."""
    rng = ctx.random
    wanted: dict[str, list[Customer]] = {"internet": [], "fiber": [], "phone": [], "tv": []}
    for customer in customers:
        count = rng.choice([1, 1, 2, 2, 3])
        wanted["fiber" if rng.random() < 0.4 else "internet"].append(customer)
        if count >= 2:
            wanted["phone"].append(customer)
        if count == 3:
            wanted["tv"].append(customer)
    by_customer: dict[int, list[Service]] = {c.id: [] for c in customers}
    for kind, owners in wanted.items():
        traits = {} if kind == "internet" else {kind: True}
        statuses = ["suspended" if c.status == "suspended" else "active" for c in owners]
        made = ServiceFactory.create_batch(
            len(owners), customer=each(owners), status=each(statuses), **traits
        )
        for service in made:
            by_customer[service.customer_id].append(service)
    return by_customer


def _invoices(
    ctx: TenantSeed, accounts: list[Any], services: dict[int, list[Service]]
) -> list[Any]:
    """3 to 12 monthly invoices per account, newest open, older ones mostly paid; returns paid."""
    rng, month = ctx.random, ctx.as_of.replace(day=1)
    rows: dict[str, list[Any]] = {"account": [], "amount": [], "issued": [], "status": []}
    for account in accounts:
        amount = sum((s.monthly_price for s in services[account.customer_id]), Decimal("0"))
        for back in range(rng.randint(3, 12) - 1, -1, -1):
            issued = _months_before(month, back)
            if back == 0:
                status = "open"
            else:
                status = "paid" if rng.random() < (0.7 if back == 1 else 0.95) else "overdue"
            for key, value in zip(rows, (account, amount, issued, status), strict=True):
                rows[key].append(value)
    invoices = InvoiceFactory.create_batch(
        len(rows["account"]),
        billing_account=each(rows["account"]),
        amount=each(rows["amount"]),
        issued_on=each(rows["issued"]),
        status=each(rows["status"]),
    )
    return [i for i in invoices if i.status == "paid"]


def _payments(ctx: TenantSeed, paid: list[Any]) -> None:
    rng = ctx.random
    times = [
        dt.datetime.combine(i.issued_on, dt.time(rng.randint(8, 20), rng.randint(0, 59)))
        + dt.timedelta(days=rng.randint(1, 28))
        for i in paid
    ]
    methods = rng.choices(["card", "ach", "cash", "check"], weights=[60, 30, 5, 5], k=len(paid))
    PaymentFactory.create_batch(
        len(paid), invoice=each(paid), paid_at=each(times), method=each(methods)
    )


def _devices(ctx: TenantSeed, services: dict[int, list[Service]]) -> None:
    """A router for every internet service, and an ONT for every fiber one, linked to it."""
    rng = ctx.random
    internet = [
        s for owned in services.values() for s in owned if s.service_type.endswith("internet")
    ]
    fiber = [s for s in internet if s.service_type == "fiber_internet"]
    vendors = rng.choices(["mikrotik", "ubiquiti", "cisco", "juniper"], k=len(internet))
    for kind, linked, vendor in (
        ("router", internet, vendors),
        ("ont", fiber, ["huawei"] * len(fiber)),
    ):
        DeviceFactory.create_batch(
            len(linked),
            customer=each([s.customer for s in linked]),
            services=each([[s] for s in linked]),
            vendor=each(vendor),
            **{kind: True},
        )


def _tickets(ctx: TenantSeed, customers: list[Customer], staff: list[Any]) -> None:
    """A ticket for about one customer in four, some assigned, a quarter with a sub-ticket."""
    rng = ctx.random
    askers = rng.sample(customers, k=max(1, len(customers) // 4)) if customers else []
    assignees = [rng.choice(staff) if rng.random() < 0.8 else None for _ in askers]
    priorities = rng.choices(
        ["low", "normal", "high", "urgent"], weights=[20, 55, 20, 5], k=len(askers)
    )
    statuses = rng.choices(["open", "pending", "closed"], weights=[40, 20, 40], k=len(askers))
    tickets = TicketFactory.create_batch(
        len(askers),
        customer=each(askers),
        assigned_to=each(assignees),
        priority=each(priorities),
        status=each(statuses),
    )
    parents = [t for t in tickets if rng.random() < 0.25]
    TicketFactory.create_batch(
        len(parents),
        parent=each(parents),
        customer=each([t.customer for t in parents]),
        assigned_to=each([t.assigned_to for t in parents]),
    )


def _months_before(month: dt.date, back: int) -> dt.date:
    total = month.year * 12 + month.month - 1 - back
    return dt.date(total // 12, total % 12 + 1, 1)
