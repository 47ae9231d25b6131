"""cleanup_all() against hand-written Core deletes of the same rows, side by side in one run.

Each round builds the same ISP dataset twice with the factories (N invoices with their billing
accounts, customers and addresses, and one tenant: 4N + 1 rows): one copy is removed by
``registry.cleanup_all()``, the other by ``DELETE ... WHERE id IN (...)`` per table in
foreign-key order, 500 keys a statement. Medians and ratios go to benchmarks/cleanup.md.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from isp_database import backend_urls, fresh_engine
from sqlalchemy import delete
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry
from dotmac_factoryboy.isp.factories import InvoiceFactory, TenantFactory
from dotmac_factoryboy.isp.models import Address, Base, BillingAccount, Customer, Invoice, Tenant

RESULTS = Path(__file__).with_name("cleanup.md")
ORDER = (Invoice, BillingAccount, Customer, Address, Tenant)


def dataset(invoices: int) -> list[object]:
    tenant = TenantFactory.create()
    return [tenant, *InvoiceFactory.create_batch(invoices, tenant=tenant)]


def by_hand(session: Session, rows: list[object]) -> None:
    """What a careful test author writes: collect ids per table, delete children first."""
    ids: dict[type, set[int]] = {model: set() for model in ORDER}
    for invoice in rows[1:]:
        account = invoice.billing_account  # type: ignore[attr-defined]
        ids[Invoice].add(invoice.id)  # type: ignore[attr-defined]
        ids[BillingAccount].add(account.id)
        ids[Customer].add(account.customer_id)
        ids[Address].add(account.customer.service_address_id)
    ids[Tenant].add(rows[0].id)  # type: ignore[attr-defined]
    for model in ORDER:
        keys = sorted(ids[model])
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            session.execute(delete(model).where(model.id.in_(chunk)))  # type: ignore[attr-defined]
    session.commit()


def measure(url: str, invoices: int, repeats: int) -> tuple[float, float]:
    engine = fresh_engine(url)
    ours, theirs = [], []
    with Session(engine) as session, registry.bound(session):
        for _ in range(repeats):
            with registry.scope():
                dataset(invoices)
                session.commit()
                start = time.perf_counter()
                registry.cleanup_all()
                ours.append(time.perf_counter() - start)
            with registry.scope() as scope:
                rows = dataset(invoices)
                session.commit()
                for invoice in rows[1:]:  # load what the hand-written version reads, untimed
                    invoice.billing_account.customer  # type: ignore[attr-defined]  # noqa: B018
                start = time.perf_counter()
                by_hand(session, rows)
                theirs.append(time.perf_counter() - start)
                registry.forget(scope)
    Base.metadata.drop_all(engine)
    engine.dispose()
    return statistics.median(ours), statistics.median(theirs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, nargs="+", default=[1000, 2500])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    urls = backend_urls()
    lines = [
        "cleanup_all() against hand-written Core deletes of the same rows, median of "
        f"{args.repeats}, measured side by side in one run.",
        "",
        "| backend | rows | cleanup_all s | hand-written s | time ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, url in urls.items():
        for invoices in args.invoices:
            ours, theirs = measure(url, invoices, args.repeats)
            line = (
                f"| {name} | {4 * invoices + 1} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f} |"
            )
            print(line, flush=True)
            lines.append(line)
    RESULTS.write_text("\n".join([*lines, ""]))


if __name__ == "__main__":
    main()
