"""Side-by-side timings against factory_boy's SQLAlchemyModelFactory (flush per object).

Every case runs both implementations in one process against the same fresh SQLite database,
alternating, and reports the median ratio; results go to benchmarks/results.md (included by the
docs' performance page). Timings are never asserted in tests.
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
from sqlalchemy import ForeignKey, String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory

RESULTS = Path(__file__).with_name("results.md")


class Base(DeclarativeBase):
    pass


class Item(Base):
    __tablename__ = "bench_items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Company(Base):
    __tablename__ = "bench_companies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))


class Team(Base):
    __tablename__ = "bench_teams"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    company_id: Mapped[int] = mapped_column(ForeignKey("bench_companies.id"))
    company: Mapped[Company] = relationship()


class Person(Base):
    __tablename__ = "bench_people"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50))
    team_id: Mapped[int] = mapped_column(ForeignKey("bench_teams.id"))
    team: Mapped[Team] = relationship()


def factories(base: type, session: Session, **meta: object) -> dict[str, type]:
    """The same declarations on either base class: one table, and a three-level tree."""

    def make(class_name: str, model: type, /, **declarations: object) -> type:
        options = {"model": model, "sqlalchemy_session": session, **meta}
        return type(class_name, (base,), {"Meta": type("Meta", (), options), **declarations})

    item = make("ItemFactory", Item, name=factory.Sequence(lambda n: f"item {n}"))
    company = make("CompanyFactory", Company, name=factory.Sequence(lambda n: f"co {n}"))
    team = make(
        "TeamFactory",
        Team,
        name=factory.Sequence(lambda n: f"team {n}"),
        company=factory.SubFactory(company),
    )
    person = make(
        "PersonFactory",
        Person,
        name=factory.Sequence(lambda n: f"person {n}"),
        team=factory.SubFactory(team),
    )
    return {"item": item, "person": person}


def timed(run: Callable[[], object], session: Session, registry: FactoryRegistry) -> float:
    """Seconds for one run, in a fresh tracking scope; the session is emptied afterwards."""
    with registry.scope() as scope:
        start = time.perf_counter()
        run()
        elapsed = time.perf_counter() - start
        registry.forget(scope)
    session.rollback()
    session.expunge_all()
    return elapsed


def compare(
    baseline: Callable[[], object],
    ours: Callable[[], object],
    repeats: int,
    session: Session,
    registry: FactoryRegistry,
) -> tuple[float, float, float]:
    """Alternate the two, ``repeats`` times each; medians and the speed ratio."""
    theirs_runs, our_runs = [], []
    for _ in range(repeats):
        theirs_runs.append(timed(baseline, session, registry))
        our_runs.append(timed(ours, session, registry))
    theirs, mine = statistics.median(theirs_runs), statistics.median(our_runs)
    return theirs, mine, theirs / mine


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    session = Session(engine)
    plain = factories(SQLAlchemyModelFactory, session, sqlalchemy_session_persistence="flush")
    bench_registry = FactoryRegistry()
    ours = factories(SQLAlchemyFactory, session, registry=bench_registry)
    n = args.size

    def each(factory_cls: type) -> Callable[[], object]:
        return lambda: [factory_cls.create() for _ in range(n)]  # type: ignore[attr-defined]

    cases = [
        (
            f"create_batch({n}), one table",
            lambda: plain["item"].create_batch(n),  # type: ignore[attr-defined]
            lambda: ours["item"].create_batch(n),  # type: ignore[attr-defined]
        ),
        (f"{n} x create(), one table", each(plain["item"]), each(ours["item"])),
        (
            f"{n} x create(), three-level SubFactory tree",
            each(plain["person"]),
            each(ours["person"]),
        ),
    ]
    rows = []
    for name, theirs, mine in cases:
        seconds_theirs, seconds_ours, ratio = compare(
            theirs, mine, args.repeats, session, bench_registry
        )
        rows.append((name, seconds_theirs, seconds_ours, ratio))
    lines = [
        f"Measured side by side in one run, alternating, median of {args.repeats}; SQLite in "
        f"memory, Python {platform.python_version()}, SQLAlchemy {sqlalchemy.__version__}, "
        f"factory_boy {factory.__version__}. Speed above 1.00x means faster than factory_boy "
        "(flush persistence); time ratio = ours / factory_boy's.",
        "",
        "| case | factory_boy s | dotmac s | speed vs factory_boy | time ratio |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(f"| {c} | {a:.3f} | {b:.3f} | {r:.2f}x | {1 / r:.2f} |" for c, a, b, r in rows),
        "",
    ]
    RESULTS.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
