"""Where the time of a created row goes: Faker, declaration evaluation (factory_boy and this
package), SQLAlchemy's ORM, SQLAlchemy Core, and the driver, for ``create_batch`` and for rows
mode (``insert_batch``), from one cProfile run each.

Each function's own time (cProfile's ``tottime``) is put in the part its module belongs to; the
shares are applied to the untraced time of the same call, so the table reads in microseconds per
created row. Writes benchmarks/profile.md (shown on the docs' performance page).
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import time
from collections.abc import Callable
from pathlib import Path

from bench_bulk import reset
from isp_database import backend_urls, fresh_engine
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry
from dotmac_factoryboy.isp.factories import CustomerFactory, TenantFactory
from dotmac_factoryboy.isp.models import Base

HERE = Path(__file__).parent
PARTS = ("Faker", "declarations", "ORM", "Core", "driver", "other")
DRIVERS = ("sqlite3", "psycopg", "pymysql", "asyncpg", "aiosqlite")


def part_of(filename: str, function: str) -> str:
    """Which part a profiled function's own time belongs to."""
    where = f"{filename} {function}"
    if "/faker/" in filename:
        return "Faker"
    if "/factory/" in filename or "/dotmac_factoryboy/" in filename:
        return "declarations"
    if "/sqlalchemy/orm/" in filename:
        return "ORM"
    if any(d in where for d in DRIVERS):
        return "driver"
    if "/sqlalchemy/" in filename:
        return "Core"
    return "other"


def shares(run: Callable[[], object]) -> dict[str, float]:
    profile = cProfile.Profile()
    profile.enable()
    run()
    profile.disable()
    totals = dict.fromkeys(PARTS, 0.0)
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    for (filename, _line, function), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        totals[part_of(filename, function)] += tottime
    whole = sum(totals.values())
    return {part: seconds / whole for part, seconds in totals.items()}


def profile_backend(backend: str, url: str, size: int) -> list[str]:
    """One table row per call on this backend."""
    engine = fresh_engine(url)
    lines = []
    with Session(engine) as session, registry.bound(session):
        tenant = TenantFactory.create()
        session.commit()
        calls = {
            "create_batch": lambda: CustomerFactory.create_batch(size, tenant=tenant),
            "insert_batch": lambda: CustomerFactory.insert_batch(size, tenant=tenant),
        }
        for name, call in calls.items():
            with registry.scope() as scope:
                start = time.perf_counter()
                call()
                session.commit()
                seconds = time.perf_counter() - start
                registry.forget(scope)
            reset(session)
            with registry.scope() as scope:
                split = shares(lambda c=call: (c(), session.commit()))  # type: ignore[misc]
                registry.forget(scope)
            reset(session)
            per_row = seconds / (2 * size) * 1e6
            cells = " | ".join(f"{per_row * split[p]:.0f}" for p in PARTS)
            line = f"| {backend} | {name} | {per_row:.0f} | {cells} |"
            lines.append(line)
            print(line, flush=True)
    Base.metadata.drop_all(engine)
    engine.dispose()
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=5_000)
    args = parser.parse_args()
    lines = [
        f"Microseconds per created row (a customer or its address), {args.size} customers with "
        "their addresses, split by where the time goes (cProfile's own time per function, by "
        "module, applied to the untraced time of the same call).",
        "",
        "| backend | call | µs per row | " + " | ".join(PARTS) + " |",
        "| --- | --- | ---: | " + " | ".join("---:" for _ in PARTS) + " |",
    ]
    for backend, url in backend_urls().items():
        lines += profile_backend(backend, url, args.size)
    (HERE / "profile.md").write_text("\n".join([*lines, ""]))


if __name__ == "__main__":
    main()
