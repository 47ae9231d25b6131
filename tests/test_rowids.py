"""Keys assigned ahead on SQLite (``rowids``): many new rows in one statement, with the keys and
values row-by-row inserts give.

Side by side on a schema of its own (a table with SQLite's ``AUTOINCREMENT``, one without, one
with a column the database fills): factory_boy's ``SQLAlchemyModelFactory`` (a flush per object),
our ``create_batch`` and rows mode's ``insert_batch`` start from the same rows, some deleted, and
must write the same rows with the same keys, on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import factory
import pytest
from factory.alchemy import SQLAlchemyModelFactory
from factory.random import reseed_random
from sqlalchemy import Engine, ForeignKey, String, delete, event, insert, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory


class Base(DeclarativeBase):
    pass


class Shelf(Base):
    __tablename__ = "rid_shelves"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(40))


class Book(Base):
    __tablename__ = "rid_books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    shelf_id: Mapped[int] = mapped_column(ForeignKey("rid_shelves.id"))
    shelf: Mapped[Shelf] = relationship()


class Note(Base):
    __tablename__ = "rid_notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(80))
    stamp: Mapped[str] = mapped_column(String(20), server_default=text("'noted'"))
    book_id: Mapped[int] = mapped_column(ForeignKey("rid_books.id"))
    book: Mapped[Book] = relationship()


def factories(base: type[Any], session: Session) -> Any:
    """The same declarations on ``base``: notes on books on shelves."""
    options: dict[str, Any] = (
        {"registry": FactoryRegistry()}
        if base is SQLAlchemyFactory
        else {"sqlalchemy_session": session, "sqlalchemy_session_persistence": "flush"}
    )

    def meta(model: type[Any]) -> type:
        return type("Meta", (), {"model": model, **options})

    shelf = type("ShelfFactory", (base,), {"Meta": meta(Shelf), "label": factory.Faker("word")})
    book = type(
        "BookFactory",
        (base,),
        {
            "Meta": meta(Book),
            "title": factory.Sequence(lambda n: f"Book {n}"),
            "shelf": factory.SubFactory(shelf),
        },
    )
    note = type(
        "NoteFactory",
        (base,),
        {"Meta": meta(Note), "body": factory.Faker("sentence"), "book": factory.SubFactory(book)},
    )
    if base is SQLAlchemyFactory:
        options["registry"].bind(session)
    return note


@pytest.fixture
def schema(engine: Engine) -> Iterator[Engine]:
    Base.metadata.drop_all(engine)
    yield engine
    Base.metadata.drop_all(engine)


def start(engine: Engine) -> None:
    """A fresh schema with 4 shelves and 4 books written by the database's own keys, the last
    two of each deleted: AUTOINCREMENT remembers shelf 4, a plain rowid table forgets book 4."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    with engine.begin() as connection:
        for _ in range(4):
            shelf = connection.execute(insert(Shelf).values(label="old")).inserted_primary_key[0]
            connection.execute(insert(Book).values(title="old", shelf_id=shelf))
        connection.execute(delete(Book).where(Book.id > 2))
        connection.execute(delete(Shelf).where(Shelf.id > 2))


def written(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as connection:
        return [
            tuple(row)
            for row in connection.execute(
                select(Note.id, Note.body, Note.stamp, Book.id, Book.title, Shelf.id, Shelf.label)
                .join(Book, Note.book_id == Book.id)
                .join(Shelf, Book.shelf_id == Shelf.id)
                .order_by(Note.id)
            )
        ]


def run(engine: Engine, how: str, size: int) -> tuple[list[tuple[Any, ...]], int]:
    """Write ``size`` notes ``how``; the rows read back and the INSERT statements sent."""
    start(engine)
    inserts = 0

    def count(_c: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        nonlocal inserts
        inserts += statement.startswith("INSERT")

    with Session(engine) as session:
        note = factories(
            SQLAlchemyModelFactory if how == "factory_boy" else SQLAlchemyFactory, session
        )
        reseed_random(20261204)
        event.listen(engine, "before_cursor_execute", count)
        try:
            made = note.insert_batch(size) if how == "insert_batch" else note.create_batch(size)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        if how != "insert_batch":
            assert [n.stamp for n in made] == ["noted"] * size  # the instances learn it
        session.commit()
    return written(engine), inserts


@pytest.mark.parametrize("size", [1, 5])
def test_keys_and_values_as_row_by_row_inserts_give(schema: Engine, size: int) -> None:
    expected, _ = run(schema, "factory_boy", size)
    assert len(expected) == size
    for how in ("create_batch", "insert_batch"):
        assert run(schema, how, size)[0] == expected, how
    if schema.dialect.name == "sqlite":
        notes, books, shelves = zip(*((r[0], r[3], r[5]) for r in expected), strict=True)
        assert list(notes) == list(range(1, size + 1))
        assert list(books) == list(range(3, 3 + size))  # after the largest key left (2)
        assert list(shelves) == list(range(5, 5 + size))  # after the largest used (4)


def test_a_batch_goes_out_in_few_statements_on_sqlite(schema: Engine) -> None:
    """Shelves and books (no column the database fills) go out in one INSERT each; notes, whose
    stamp the database fills, row by row as the ORM writes them (create_batch) or in one
    (insert_batch, which reads the stamps back by key)."""
    if schema.dialect.name != "sqlite":
        pytest.skip("keys are assigned ahead on SQLite only")
    assert run(schema, "factory_boy", 20)[1] == 60
    assert run(schema, "create_batch", 20)[1] == 1 + 1 + 20
    assert run(schema, "insert_batch", 20)[1] == 3
