"""SQLite rowids assigned ahead, so that many new rows go out in one statement.

For an ordered ``RETURNING`` SQLAlchemy sends SQLite one INSERT per row (SQLite does not promise
the order of returned rows), and so does the ORM's flush whenever it needs the generated keys.
SQLite's own rule for a rowid key is simple, though: a new row gets the largest rowid in the
table plus one, or, for a table declared ``AUTOINCREMENT``, the largest it ever used plus one
(``sqlite_sequence``). Once this connection holds the write lock, no other connection inserts
until the transaction ends, so the next rowids are known and rows given them are the rows
row-by-row inserts would have made, with the same keys.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import MetaData, Table, delete, false, func, select, text
from sqlalchemy.orm import Mapper, Session
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.schema import sort_tables_and_constraints

LARGEST_ROWID = 2**63 - 1
"""Past it SQLite picks unused rowids at random: no rowids are assigned ahead there."""


def rowid_column(table: Table, dialect: Any) -> Any:
    """The table's key column when SQLite fills it as the rowid (a one-column ``INTEGER
    PRIMARY KEY`` of a rowid table), else None."""
    if dialect.name != "sqlite" or not table.dialect_options["sqlite"]["with_rowid"]:
        return None
    if table.schema is not None:  # an attached database keeps its own sqlite_sequence
        return None
    column = table.autoincrement_column
    if column is None or len(table.primary_key.columns) != 1:
        return None
    return column if column.type.compile(dialect=dialect) == "INTEGER" else None


def take_write_lock(connection: Any, table: Table) -> None:
    """Hold SQLite's write lock until this transaction ends: a DELETE that matches nothing
    still makes the transaction a writer, so no other connection can insert meanwhile."""
    connection.execute(delete(table).where(false()))


def next_rowids(connection: Any, table: Table, count: int) -> range | None:
    """The rowids SQLite would give the next ``count`` rows of ``table``, in order (call with
    the write lock held), or None past the largest rowid."""
    column = rowid_column(table, connection.dialect)
    assert column is not None
    largest = connection.execute(select(func.max(column))).scalar() or 0
    if table.dialect_options["sqlite"]["autoincrement"]:
        used = connection.execute(
            text("SELECT seq FROM sqlite_sequence WHERE name = :name"), {"name": table.name}
        ).scalar()
        largest = max(largest, used or 0)
    if largest + count > LARGEST_ROWID:
        return None
    return range(largest + 1, largest + 1 + count)


AHEAD_FROM = 4
"""Fewest new rows of one table worth the two statements that learn their rowids."""


def assign_ahead(session: Session) -> None:
    """Before a flush: give the session's new rows of a SQLite rowid table their keys when the
    flush would insert them one per statement, in the order they were added, so that it inserts
    them in one ``executemany`` instead. Only where that order is certain: one mapper per table,
    no inheritance, no foreign-key cycle, no ``before_insert`` listener, no column the database
    fills, and no new row of the table that has a key already."""
    new = session.new
    if len(new) < AHEAD_FROM:  # a single create(): nothing to learn, nothing to build
        return
    by_class: dict[type[Any], list[Any]] = defaultdict(list)
    for instance in new:  # per object only its class: most flushes stop below
        by_class[type(instance)].append(instance)
    mappers = {cls: instance_state(objects[0]).mapper for cls, objects in by_class.items()}
    tables = [m.local_table for m in mappers.values()]
    deleted = {instance_state(i).mapper for i in session.deleted}
    for cls, objects in by_class.items():
        mapper = mappers[cls]
        if len(objects) < AHEAD_FROM or mapper in deleted or tables.count(mapper.local_table) > 1:
            continue
        column = _keyed_ahead(mapper, session.get_bind(mapper=mapper).dialect)
        if column is None:
            continue
        connection = session.connection(bind_arguments={"mapper": mapper})
        states = [instance_state(i) for i in objects]
        key = mapper.get_property_by_column(column).key
        if any(state.dict.get(key) is not None or state.insert_order is None for state in states):
            continue
        take_write_lock(connection, mapper.local_table)  # type: ignore[arg-type]
        rowids = next_rowids(connection, mapper.local_table, len(states))  # type: ignore[arg-type]
        if rowids is None:
            continue
        ordered = sorted(states, key=lambda s: s.insert_order or 0)  # the flush's order
        for state, rowid in zip(ordered, rowids, strict=True):
            setattr(state.obj(), key, rowid)


_AHEAD: dict[tuple[Mapper[Any], str], Any] = {}


def _keyed_ahead(mapper: Mapper[Any], dialect: Any) -> Any:
    """The rowid column of a mapper whose new rows the flush inserts in the order they were
    added, one per statement, with nothing filled by the database; else None (cached per
    mapper and dialect: one model may be written to several databases)."""
    cached = (mapper, dialect.name)
    if cached not in _AHEAD:
        table = mapper.local_table
        simple = (
            isinstance(table, Table)
            and mapper.inherits is None
            and len(list(mapper.self_and_descendants)) == 1
            and not mapper.dispatch.before_insert
            and not any(c.server_default is not None for c in table.columns)
            and table not in _in_cycles(table.metadata)
        )
        _AHEAD[cached] = rowid_column(table, dialect) if simple else None  # type: ignore[arg-type]
    return _AHEAD[cached]


def _in_cycles(metadata: MetaData) -> set[Table]:
    """Tables whose foreign keys form a cycle (a self-reference included): the flush orders
    their rows by those references, not by when they were added."""
    tables = list(metadata.tables.values())
    cyclic = sort_tables_and_constraints(tables)[-1][1] if tables else []  # type: ignore[no-untyped-call]
    found = {fk.parent for fk in cyclic} | {fk.referred_table for fk in cyclic}
    found |= {t for t in tables for fk in t.foreign_key_constraints if fk.referred_table is t}
    return found
