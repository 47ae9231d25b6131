"""create_batch_async of ISP customers (with their addresses) through an AsyncSession, side by
side in one process with our sync create_batch and with polyfactory's create_batch_async on the
same models: SQLite (aiosqlite vs pysqlite) always, PostgreSQL (asyncpg vs psycopg) and MariaDB
(aiomysql vs PyMySQL) when DOTMAC_TEST_POSTGRES_URL / DOTMAC_TEST_MARIADB_URL are set.

Writes benchmarks/async.md (shown on the docs' performance page). Timings are never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from bench_bulk import polyfactory_factory, reset
from isp_database import backend_urls, fresh_engine
from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry
from dotmac_factoryboy.engines import async_url
from dotmac_factoryboy.isp.factories import CustomerFactory, TenantFactory
from dotmac_factoryboy.isp.models import Base

HERE = Path(__file__).parent
OURS_ASYNC = "dotmac_factoryboy create_batch_async"
OURS_SYNC = "dotmac_factoryboy create_batch (sync driver)"
POLY_ASYNC = "polyfactory create_batch_async"


async def measure(engine: Engine, size: int, repeats: int) -> dict[str, float]:
    made = create_async_engine(async_url(engine.url))
    if made.dialect.name == "sqlite":
        from sqlalchemy import event

        event.listen(made.sync_engine, "connect", lambda c, _: c.execute("PRAGMA foreign_keys=ON"))
    times: dict[str, list[float]] = {OURS_ASYNC: [], OURS_SYNC: [], POLY_ASYNC: []}
    with Session(engine) as sync_session, registry.bound(sync_session):
        tenant = TenantFactory.create()
        sync_session.commit()
        tenant_id = tenant.id
    async with AsyncSession(made, expire_on_commit=False) as session:
        bound_tenant = await session.get(type(tenant), tenant_id)
        poly = polyfactory_factory(None, bound_tenant)  # type: ignore[arg-type]
        poly.__async_session__ = session
        for _ in range(repeats):
            with registry.bound(session), registry.scope() as scope:  # type: ignore[arg-type]
                times[OURS_ASYNC].append(
                    await timed(
                        session,
                        lambda: CustomerFactory.create_batch_async(size, tenant=bound_tenant),
                    )
                )
                registry.forget(scope)
            await session.run_sync(reset)
            times[POLY_ASYNC].append(await timed(session, lambda: poly.create_batch_async(size)))
            await session.run_sync(reset)
            with Session(engine) as sync_session, registry.bound(sync_session):
                with registry.scope() as scope:
                    start = time.perf_counter()
                    CustomerFactory.create_batch(size, tenant_id=tenant_id)
                    sync_session.commit()
                    times[OURS_SYNC].append(time.perf_counter() - start)
                    registry.forget(scope)
                reset(sync_session)
    await made.dispose()
    return {name: statistics.median(values) for name, values in times.items()}


async def timed(session: AsyncSession, run: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await run()
    await session.commit()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lines = [
        f"`create_batch_async({args.size})` of ISP customers with their addresses, one tenant, "
        f"median of {args.repeats}, side by side in one run (Python {platform.python_version()})."
        " Ratio = that case's time / our create_batch_async's.",
        "",
        "| backend (async driver / sync driver) | case | median s | time vs ours (async) |",
        "| --- | --- | ---: | ---: |",
    ]
    for backend, url in backend_urls().items():
        engine = fresh_engine(url)
        medians = asyncio.run(measure(engine, args.size, args.repeats))
        drivers = f"{async_url(engine.url).get_driver_name()} / {engine.url.get_driver_name()}"
        ours = medians[OURS_ASYNC]
        for name, seconds in medians.items():
            line = f"| {backend} ({drivers}) | {name} | {seconds:.2f} | {seconds / ours:.2f}x |"
            lines.append(line)
            print(line, flush=True)
        Base.metadata.drop_all(engine)
        engine.dispose()
    (HERE / "async.md").write_text("\n".join([*lines, ""]))


if __name__ == "__main__":
    main()
