"""Rows mode on PostgreSQL writes large batches with COPY (``pgcopy``): the same rows, keys and
instance values as its INSERT, or the INSERT itself where COPY could not match it.

A schema of its own: a UUID-keyed tenant under another column name (``org_ref``), a Python
enum, a type with its own bind step, a column with a constant Python default the factory leaves
out, one with a server default, a type that wraps SQL around its values, and a ``GENERATED
ALWAYS`` identity key."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import factory
import pytest
from sqlalchemy import (
    Engine,
    ForeignKey,
    Identity,
    Numeric,
    String,
    TypeDecorator,
    func,
    select,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory, TenantIsolatedFactory
from dotmac_factoryboy.errors import BatchError
from dotmac_factoryboy.pgcopy import COPY_FROM

from .backends import make_engine
from .test_bulk import Statements

SIZE = COPY_FROM + 36


class Base(DeclarativeBase):
    pass


class Kind(enum.Enum):
    DEBIT = "debit"
    CREDIT = "credit"


class Upper(TypeDecorator[str]):
    """A type with a bind step of its own: COPY must send what an INSERT sends."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return value.upper() if value is not None else None


class Lowered(TypeDecorator[str]):
    """A type that wraps SQL around its bound value: COPY, which sends values, must not take it."""

    impl = String(40)
    cache_ok = True

    def bind_expression(self, bindvalue: Any) -> Any:
        return func.lower(bindvalue)


class Org(Base):
    __tablename__ = "cp_orgs"
    ref: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(40))


class Entry(Base):
    __tablename__ = "cp_entries"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_ref: Mapped[uuid.UUID] = mapped_column(ForeignKey("cp_orgs.ref"))
    org: Mapped[Org] = relationship()
    code: Mapped[str] = mapped_column(String(20), unique=True)
    amount: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    kind: Mapped[Kind]
    label: Mapped[str] = mapped_column(Upper)
    posted_on: Mapped[dt.date]
    note: Mapped[str] = mapped_column(String(20), default="none")
    flag: Mapped[bool | None]
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("cp_entries.id"))


class Stamped(Base):
    __tablename__ = "cp_stamped"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(40))
    stamp: Mapped[str] = mapped_column(String(20), server_default=text("'stamped'"))


class Shouted(Base):
    __tablename__ = "cp_shouted"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(Lowered)


class Fixed(Base):
    __tablename__ = "cp_fixed"
    id: Mapped[int] = mapped_column(Identity(always=True), primary_key=True)
    body: Mapped[str] = mapped_column(String(40))


REGISTRY = FactoryRegistry()


class OrgFactory(SQLAlchemyFactory[Org]):
    class Meta:
        model = Org
        registry = REGISTRY

    name = factory.Sequence(lambda n: f"org {n}")


class EntryFactory(TenantIsolatedFactory[Entry]):
    class Meta:
        model = Entry
        registry = REGISTRY
        tenant_field = "org_ref"
        tenant_factory = OrgFactory

    code = factory.Sequence(lambda n: f"E{n:05d}")
    amount = factory.Faker("pydecimal", left_digits=4, right_digits=2, positive=True)
    kind = factory.Iterator([Kind.DEBIT, Kind.CREDIT])
    label = factory.Faker("word")
    posted_on = factory.Faker("date_between", start_date=dt.date(2026, 1, 1))


class StampedFactory(SQLAlchemyFactory[Stamped]):
    class Meta:
        model = Stamped
        registry = REGISTRY

    body = factory.Faker("word")


class ShoutedFactory(SQLAlchemyFactory[Shouted]):
    class Meta:
        model = Shouted
        registry = REGISTRY

    body = factory.Sequence(lambda n: f"LOUD {n}")


class FixedFactory(SQLAlchemyFactory[Fixed]):
    class Meta:
        model = Fixed
        registry = REGISTRY

    body = factory.Faker("word")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    engine = make_engine("postgresql", Path(tmp_path_factory.mktemp("pgcopy")))
    yield engine
    engine.dispose()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with Session(engine) as session, REGISTRY.bound(session):
        yield session
    Base.metadata.drop_all(engine)


@pytest.fixture
def statements(db: Session) -> Iterator[list[str]]:
    """The first words of every statement the test runs (COPY is not among them)."""
    with Statements(db) as seen:
        yield seen


def inserts_into(statements: list[str], table: str) -> int:
    return sum(s.startswith(f"INSERT INTO {table}") for s in statements)


def test_a_large_batch_goes_by_copy_with_the_keys_and_values_an_insert_gives(
    db: Session, statements: list[str]
) -> None:
    org = OrgFactory.create()
    db.commit()
    org_ref = org.ref
    first = EntryFactory.insert_batch(3, org=org)  # below COPY_FROM: an INSERT
    assert inserts_into(statements, "cp_entries") == 1
    keys = EntryFactory.insert_batch(SIZE, org=org)
    db.commit()
    assert inserts_into(statements, "cp_entries") == 1  # the large batch sent no INSERT
    assert keys == list(range(first[-1] + 1, first[-1] + 1 + SIZE))  # the sequence's next
    made = REGISTRY.instances_of(EntryFactory)[-SIZE:]  # the tracked rows, as the call left them
    assert [e.id for e in made] == keys
    db.expunge_all()
    stored = {e.id: e for e in db.scalars(select(Entry).where(Entry.id.in_(keys)))}
    for entry in made:
        row = stored[entry.id]
        for column in Entry.__table__.columns:
            if column.key != "label":  # the stored label is the bind step's upper case
                assert getattr(row, column.key) == getattr(entry, column.key), column.key
    assert {e.note for e in made} == {"none"} and {e.flag for e in made} == {None}
    assert all(e.label == e.label.upper() for e in stored.values())  # the type's bind step ran
    assert {e.kind for e in stored.values()} == {Kind.DEBIT, Kind.CREDIT}
    assert all(e.org_ref == org_ref for e in made)


def test_copy_and_insert_write_the_same_rows(db: Session) -> None:
    org = OrgFactory.create()
    db.commit()
    factory.random.reseed_random(7)
    EntryFactory.reset_sequence(0)
    by_copy = EntryFactory.insert_batch(SIZE, org=org)
    factory.random.reseed_random(7)
    EntryFactory.reset_sequence(10_000)
    by_orm = [e.id for e in EntryFactory.create_batch(SIZE, org=org)]
    db.commit()
    db.expunge_all()

    def data(keys: list[int]) -> list[tuple[Any, ...]]:
        rows = db.scalars(select(Entry).where(Entry.id.in_(keys)))
        return sorted(
            (e.amount, e.kind, e.label, e.posted_on, e.note, e.flag, e.org_ref) for e in rows
        )

    assert len(data(by_copy)) == SIZE
    assert data(by_copy) == data(by_orm)


def test_what_copy_cannot_match_keeps_the_insert(db: Session, statements: list[str]) -> None:
    StampedFactory.insert_batch(SIZE)
    fixed = FixedFactory.insert_batch(SIZE)
    ShoutedFactory.insert_batch(SIZE)
    db.commit()
    assert inserts_into(statements, "cp_shouted") == 1  # lower() around each value
    assert set(db.scalars(select(Shouted.body))) == {f"loud {n}" for n in range(SIZE)}
    assert inserts_into(statements, "cp_stamped") == 1  # a server default to return
    assert inserts_into(statements, "cp_fixed") == 1  # GENERATED ALWAYS takes no keys
    assert {s.stamp for s in REGISTRY.instances_of(StampedFactory)} == {"stamped"}
    assert len(set(fixed)) == SIZE
    assert db.scalar(select(func.count()).select_from(Fixed)) == SIZE


def test_a_failing_copy_writes_nothing_and_names_the_object(db: Session) -> None:
    org = OrgFactory.create()
    db.commit()
    codes = [f"C{n}" for n in range(SIZE - 1)] + ["C3"]  # the last one repeats a code
    with pytest.raises(BatchError) as raised:
        EntryFactory.insert_batch(SIZE, org=org, code=factory.Iterator(codes))
    assert raised.value.index == SIZE - 1
    assert "unique" in str(raised.value).lower()
    assert db.scalar(select(func.count()).select_from(Entry)) == 0
    assert len(EntryFactory.insert_batch(SIZE, org=org)) == SIZE  # the session is usable
    db.commit()
    assert db.scalar(select(func.count()).select_from(Entry)) == SIZE
