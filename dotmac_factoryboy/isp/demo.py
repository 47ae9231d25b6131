"""Demo: build the ISP domain into an embedded SQLite database, print it, then clean it up.

Run with ``python -m dotmac_factoryboy.isp.demo``.
"""

from __future__ import annotations

from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from .. import LinkOnly, customize, registry, tenant_context
from . import factories as f
from .models import Base, Customer


def main() -> None:
    """Create a small ISP tenant with related rows, print what was made, then delete it."""
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session, registry.bound(session):
        tenant = f.TenantFactory.create(name="Acme Fiber", subdomain="acme")
        with tenant_context(tenant):
            acme = f.CustomerFactory.create(enterprise=True, with_billing_address=True)
            f.ServiceFactory.create(LinkOnly(acme), fiber=True)
            f.ServiceFactory.create_batch(2, phone=True)
            f.InvoiceFactory.create(customize(Customer, name="Paid Up Ltd"), paid=True)
            f.InvoiceFactory.create(overdue=True)
            f.DeviceFactory.create(router=True, mikrotik=True, customer=acme)
            f.TicketFactory.create(urgent=True, customer=acme)
        print(f"Tenant {tenant.name!r} (id {tenant.id}) now holds:")
        for table in Base.metadata.sorted_tables:
            rows = session.execute(select(func.count()).select_from(table)).scalar_one()
            print(f"  {table.name:<18} {rows:>3}")
        for customer in session.scalars(select(Customer).order_by(Customer.id)):
            print(f"  {customer.customer_number}  {customer.type:<11} {customer.name}")
        made = len(registry.instances)
        registry.cleanup_all()
        left = sum(
            session.execute(select(func.count()).select_from(t)).scalar_one()
            for t in Base.metadata.sorted_tables
        )
        print(f"Cleanup deleted the {made} tracked rows, children first; rows left: {left}.")


if __name__ == "__main__":
    main()
