"""Reverse-dependency deletion of tracked rows: children first, by primary key, never a row the
factories did not create."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, delete, false, or_, select, tuple_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.schema import ForeignKeyConstraint, sort_tables_and_constraints

CHUNK_SIZE = 500
"""Primary keys per DELETE statement (well under every backend's bound-parameter limit)."""

Key = tuple[Any, ...]
Row = tuple[Table, Key]


@dataclass(frozen=True)
class BlockedRow:
    """A tracked row left in place because a row nobody tracked references it."""

    table: str
    primary_key: Key
    referenced_by: str


def delete_instances(
    session: Session, instances: Sequence[Any]
) -> tuple[list[Any], list[BlockedRow]]:
    """Delete the rows of ``instances`` children-first and commit; returns (deleted, blocked)."""
    session.flush()
    owners: dict[Row, list[Any]] = defaultdict(list)
    targets: dict[Table, set[Key]] = defaultdict(set)
    for instance in instances:
        state = sa_inspect(instance)
        if state.identity is None:
            if state.pending:
                session.expunge(instance)
            continue
        for table in state.mapper.tables:
            targets[table].add(tuple(state.identity))
        owners[(state.mapper.local_table, tuple(state.identity))].append(instance)
    if not targets:
        return [], []
    blocked = _blocked_rows(session, targets)
    blocked_keys = {(t, k) for t, k, _ in blocked}
    keep = {t: {k for k in keys if (t, k) not in blocked_keys} for t, keys in targets.items()}
    order = sort_tables_and_constraints(list(keep))  # type: ignore[no-untyped-call]
    cyclic = [fk for table, fks in order if table is None for fk in fks]
    cyclic += [fk for t in keep for fk in t.foreign_key_constraints if fk.referred_table is t]
    for fk in cyclic:
        table = fk.parent
        if table in keep and keep[table] and all(c.nullable for c in fk.columns):
            for chunk in _chunks(keep[table]):
                values = {c.key: None for c in fk.columns}
                session.execute(update(table).where(_pk_in(table, chunk)).values(values))
    for table, _ in reversed(order):
        if table is not None and keep.get(table):
            for chunk in _chunks(keep[table]):
                session.execute(delete(table).where(_pk_in(table, chunk)))
    session.commit()
    deleted = [
        i for (table, key), objs in owners.items() if (table, key) not in blocked_keys for i in objs
    ]
    for instance in deleted:
        if sa_inspect(instance).session is session:
            session.expunge(instance)
    return deleted, [BlockedRow(t.name, k, by) for t, k, by in blocked]


def _blocked_rows(session: Session, targets: dict[Table, set[Key]]) -> list[tuple[Table, Key, str]]:
    """Tracked rows referenced, directly or through other blocked rows, by untracked rows."""
    edges: list[tuple[Row, Row]] = []
    blocked: dict[Row, str] = {}
    for fk in _constraints_into(targets):
        referred, referring = fk.referred_table, cast(Table, fk.parent)
        alias = referring.alias()  # a self-referential FK joins the table to itself
        condition = and_(*(alias.c[e.parent.key] == e.column for e in fk.elements))
        joined = alias.join(referred, condition)
        pk_cols = [
            *referred.primary_key.columns,
            *(alias.c[c.key] for c in referring.primary_key.columns),
        ]
        width = len(referred.primary_key.columns)
        for chunk in _chunks(targets[referred]):
            query = select(*pk_cols).select_from(joined).where(_pk_in(referred, chunk))
            for row in session.execute(query):
                parent: Row = (referred, tuple(row[:width]))
                child: Row = (referring, tuple(row[width:]))
                if child[1] in targets.get(referring, ()):
                    edges.append((child, parent))
                else:
                    blocked.setdefault(parent, referring.name)
    changed = True
    while changed:
        changed = False
        for child, parent in edges:
            if child in blocked and parent not in blocked and child != parent:
                blocked[parent] = child[0].name
                changed = True
    return [(t, k, by) for (t, k), by in blocked.items()]


def _constraints_into(targets: dict[Table, set[Key]]) -> list[ForeignKeyConstraint]:
    """Every FK constraint, in the targets' metadata, that points at a target table."""
    found: dict[int, ForeignKeyConstraint] = {}
    for metadata in {t.metadata for t in targets}:
        for table in metadata.tables.values():
            for fk in table.foreign_key_constraints:
                if fk.referred_table in targets:
                    found[id(fk)] = fk
    return list(found.values())


def _pk_in(table: Table, keys: Iterable[Key]) -> ColumnElement[bool]:
    columns = list(table.primary_key.columns)
    keys = list(keys)
    if not keys:
        return false()
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])
    return or_(tuple_(*columns).in_(keys))


def _chunks(keys: Iterable[Key]) -> Iterable[list[Key]]:
    ordered = sorted(keys, key=repr)
    for start in range(0, len(ordered), CHUNK_SIZE):
        yield ordered[start : start + CHUNK_SIZE]
