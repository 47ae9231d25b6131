"""cleanup_all() against Core deletes of the same rows, side by side in one run.

Each round builds the same ISP dataset three times with the factories (N invoices with their
billing accounts, customers and addresses, and one tenant: 4N + 1 rows) and removes it, then
commits:

- ``registry.cleanup_all()``;
- Core (the limit): ``DELETE FROM <table> WHERE id IN (...)`` per table in foreign-key order,
  500 keys a statement, executed on the session's connection (``session.connection()``), with
  the ids already known;
- the same statements as ORM-enabled ``session.execute(delete(Model)...)``, which makes
  SQLAlchemy synchronize the session's identity map (holding the rows' objects) on every
  statement: what a test author typically writes.

Medians and ratios go to benchmarks/cleanup.md.
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


def ids_of(rows: list[object]) -> dict[type, list[int]]:
    """Each table's ids, children first (read untimed: the baselines start knowing them)."""
    ids: dict[type, set[int]] = {model: set() for model in ORDER}
    for invoice in rows[1:]:
        account = invoice.billing_account  # type: ignore[attr-defined]
        ids[Invoice].add(invoice.id)  # type: ignore[attr-defined]
        ids[BillingAccount].add(account.id)
        ids[Customer].add(account.customer_id)
        ids[Address].add(account.customer.service_address_id)
    ids[Tenant].add(rows[0].id)  # type: ignore[attr-defined]
    return {model: sorted(keys) for model, keys in ids.items()}


def core_deletes(session: Session, ids: dict[type, list[int]]) -> None:
    """Core ``DELETE ... WHERE id IN (...)`` on the session's connection: no ORM involved."""
    connection = session.connection()
    for model, keys in ids.items():
        table = model.__table__  # type: ignore[attr-defined]
        for start in range(0, len(keys), 500):
            connection.execute(delete(table).where(table.c.id.in_(keys[start : start + 500])))
    session.commit()


def orm_deletes(session: Session, ids: dict[type, list[int]]) -> None:
    """The same statements through the ORM (``session.execute``): the identity map is synced."""
    for model, keys in ids.items():
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            session.execute(delete(model).where(model.id.in_(chunk)))  # type: ignore[attr-defined]
    session.commit()


CASES = (
    "cleanup_all()",
    "Core deletes (session's connection)",
    "ORM-enabled deletes (session.execute)",
)


def measure(url: str, invoices: int, repeats: int) -> dict[str, float]:
    engine = fresh_engine(url)
    times: dict[str, list[float]] = {case: [] for case in CASES}
    baselines = {CASES[1]: core_deletes, CASES[2]: orm_deletes}
    with Session(engine) as session, registry.bound(session):
        for _ in range(repeats):
            with registry.scope():
                dataset(invoices)
                session.commit()
                start = time.perf_counter()
                registry.cleanup_all()
                times[CASES[0]].append(time.perf_counter() - start)
            for case, remove in baselines.items():
                with registry.scope() as scope:
                    rows = dataset(invoices)
                    session.commit()
                    ids = ids_of(rows)
                    start = time.perf_counter()
                    remove(session, ids)
                    times[case].append(time.perf_counter() - start)
                    registry.forget(scope)
                session.expunge_all()
    Base.metadata.drop_all(engine)
    engine.dispose()
    return {case: statistics.median(values) for case, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--invoices", type=int, nargs="+", default=[1000, 2500])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    urls = backend_urls()
    lines = [
        "cleanup_all() against Core deletes of the same rows on the session's connection (the "
        "limit), and the same deletes through the ORM, each followed by the commit; median of "
        f"{args.repeats}, measured side by side in one run. Ratio = cleanup_all()'s time / "
        "that case's.",
        "",
        "| backend | rows | cleanup_all() s | Core deletes s | vs Core | ORM-enabled deletes s "
        "| vs ORM-enabled |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, url in urls.items():
        for invoices in args.invoices:
            t = measure(url, invoices, args.repeats)
            ours, core, orm = (t[case] for case in CASES)
            line = (
                f"| {name} | {4 * invoices + 1} | {ours:.3f} | {core:.3f} | {ours / core:.2f}x "
                f"| {orm:.3f} | {ours / orm:.2f}x |"
            )
            print(line, flush=True)
            lines.append(line)
    RESULTS.write_text("\n".join([*lines, ""]))


if __name__ == "__main__":
    main()
