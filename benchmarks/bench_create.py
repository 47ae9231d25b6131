"""Side-by-side timing of create_batch: factory_boy's flush-per-object vs SQLAlchemyFactory.

Both run in one process against the same fresh SQLite database; the result is a ratio, written to
benchmarks/results.md (included by the docs' performance page). Never asserted in tests.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import factory
import sqlalchemy
from factory.alchemy import SQLAlchemyModelFactory
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory

RESULTS = Path(__file__).with_name("results.md")


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


def timed(make: Callable[[int], object], size: int, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        make(size)
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = Session(engine)
    bench_registry = FactoryRegistry()

    class PlainFactory(SQLAlchemyModelFactory):
        class Meta:
            model = Item
            sqlalchemy_session = session
            sqlalchemy_session_persistence = "flush"

        name = factory.Sequence(lambda n: f"item {n}")

    class OurFactory(SQLAlchemyFactory[Item]):
        class Meta:
            model = Item
            sqlalchemy_session = session
            registry = bench_registry

        name = factory.Sequence(lambda n: f"item {n}")

    baseline = timed(lambda n: PlainFactory.create_batch(n), args.size, args.repeats)
    ours = timed(lambda n: OurFactory.create_batch(n), args.size, args.repeats)
    session.rollback()
    rows = [
        ("factory_boy SQLAlchemyModelFactory (flush per object)", baseline, 1.0),
        ("dotmac_factoryboy SQLAlchemyFactory.create_batch", ours, baseline / ours),
    ]
    lines = [
        f"Measured side by side in one run: create_batch({args.size}) of a one-column model, "
        f"median of {args.repeats}, SQLite in memory, Python {platform.python_version()}, "
        f"SQLAlchemy {sqlalchemy.__version__}, factory_boy {factory.__version__}.",
        "",
        "| implementation | median seconds | speed vs factory_boy |",
        "| --- | ---: | ---: |",
        *(f"| {name} | {secs:.3f} | {ratio:.2f}x |" for name, secs, ratio in rows),
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
