"""Reverse-dependency deletion of tracked rows: children first, by primary key, never a row the
factories did not create unless it exists only because of rows being deleted.

One mechanism decides every row that references a row being deleted: a tracked row is deleted
with it; an untracked row whose foreign keys all point at rows being deleted is a *dependent*,
deleted too when its table is a relationship's ``secondary`` table (it exists only to link those
rows) or when the caller opts in with ``include_dependents``; any other row blocks, and so does
everything it references, transitively.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, Table, delete, false, or_, select, tuple_, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.schema import ForeignKeyConstraint, sort_tables_and_constraints

from .collector import collector_paused
from .errors import CleanupError

CHUNK_SIZE = 500
"""Keys per statement (well under every backend's bound-parameter limit)."""
ATTEMPTS = 3
"""How often a failed delete round is retried on a fresh transaction before giving up."""

Key = tuple[Any, ...]
Row = tuple[Table, Key]


@dataclass(frozen=True)
class BlockedRow:
    """A tracked row left in place because a row outside this cleanup references it; ``why``
    says which kind when it is not simply a row nobody tracked."""

    table: str
    primary_key: Key
    referenced_by: str
    why: str = ""


LEFT_TOO = "a tracked row this cleanup left too, above"
LINKS_OUTSIDE = "an association row that also links rows outside this cleanup"


@dataclass
class CleanupReport:
    """What a cleanup deleted: tracked rows per table, and the untracked dependents with them."""

    deleted: dict[str, int] = field(default_factory=dict)
    dependents: list[tuple[str, Key]] = field(default_factory=list)
    blocked: list[BlockedRow] = field(default_factory=list)

    def merge(self, other: CleanupReport) -> None:
        """Add another session's report to this one."""
        for table, number in other.deleted.items():
            self.deleted[table] = self.deleted.get(table, 0) + number
        self.dependents.extend(other.dependents)
        self.blocked.extend(other.blocked)


def delete_instances(
    session: Session, instances: Sequence[Any], *, include_dependents: bool = False
) -> tuple[list[Any], CleanupReport]:
    """Delete the rows of ``instances`` children-first and commit; returns (deleted, report).

    A session that needs a rollback (or whose connection is gone) is rolled back first; rows the
    test committed are still deleted. A failed round is retried on a fresh transaction; if rows
    still remain, ``CleanupError`` lists them. Never returns while a deletable tracked row remains.
    """
    with collector_paused():
        return _delete_instances(session, instances, include_dependents)


def _delete_instances(
    session: Session, instances: Sequence[Any], include_dependents: bool
) -> tuple[list[Any], CleanupReport]:
    _settle(session)
    owners: dict[Row, list[tuple[Any, Any]]] = defaultdict(list)
    targets: dict[Table, set[Key]] = defaultdict(set)
    secondary: set[Table] = set()
    for instance in instances:
        state: Any = instance_state(instance)  # inspect() without its dispatch: a row each
        secondary |= _secondary_of(state.mapper)
        if state.key is None:
            if state.pending:
                session.expunge(instance)
            continue
        identity = tuple(state.key[1])
        for table in state.mapper.tables:
            targets[table].add(identity)
        owners[(state.mapper.local_table, identity)].append((instance, state))
    if not targets:
        return [], CleanupReport()
    failures: list[BaseException] = []
    for _ in range(ATTEMPTS):
        try:
            plan = _Deletion(session, targets, secondary, include_dependents, edges=False)
            if plan.blocked:  # a row stays: find which rows it keeps, through every edge
                plan = _Deletion(session, targets, secondary, include_dependents, edges=True)
            plan.execute()
            _detach(session, owners, set(plan.blocked))  # before commit: nothing left to expire
            session.commit()
            break
        except SQLAlchemyError as exc:
            failures.append(exc)
            session.rollback()
    else:
        remaining = sum(len(keys) for keys in targets.values())
        raise CleanupError(
            f"{remaining} tracked row(s) in {', '.join(sorted(t.name for t in targets))} could not "
            f"be deleted after {ATTEMPTS} attempts; they are still tracked. Last database error: "
            f"{failures[-1]}. Fix: end what holds or references them, then clean up again.",
            errors=failures,
        )
    blocked_keys = set(plan.blocked)
    deleted = [i for row, objs in owners.items() if row not in blocked_keys for i, _ in objs]
    report = CleanupReport(
        deleted={t.name: len(k) for t, k in plan.tracked_deleted().items() if k},
        dependents=[(t.name, k) for t, k in plan.dependents],
        blocked=[
            BlockedRow(t.name, k, by, plan.why.get((t, k), ""))
            for (t, k), by in plan.blocked.items()
            if k in targets.get(t, ())
        ],
    )
    return deleted, report


def _detach(session: Session, owners: dict[Row, list[tuple[Any, Any]]], blocked: set[Row]) -> None:
    """Expunge the instances of deleted rows, so the session never hands them out again.

    When they are everything the session holds (the usual end of a test), ``expunge_all()`` does
    the same at a fraction of the cost of one ``expunge()``, with its cascade walk, per row."""
    leaving = {  # by state: an instance tracked twice counts once
        id(state): (instance, state)
        for row, objects in owners.items()
        if row not in blocked
        for instance, state in objects
        if state.session is session
    }
    held = session.identity_map.all_states()
    only_these = len(held) == len(leaving) and all(id(s) in leaving for s in held)
    if only_these and not session.new and not session.deleted:
        session.expunge_all()
        return
    for instance, state in leaving.values():
        if state.session is session:  # not already gone with a parent's expunge cascade
            session.expunge(instance)


SNAPSHOT_LEVELS = frozenset({"REPEATABLE READ", "SERIALIZABLE", "SNAPSHOT"})
"""Isolation levels whose transactions read a snapshot: cleanup starts a new transaction."""


def _settle(session: Session) -> None:
    """Write what the test left pending, or roll back a session that cannot, so that cleanup
    starts on a working connection; under a snapshot isolation level (MariaDB's REPEATABLE
    READ, SQLite in WAL mode) it also starts a new transaction, to see rows committed since,
    unless none is open (the next statement starts one)."""
    try:
        session.flush()
        if not session.in_transaction():
            return
        level = session.connection().get_isolation_level()
        if level in SNAPSHOT_LEVELS:
            session.commit()
    except SQLAlchemyError:
        session.rollback()


class _Deletion:
    """The rows one cleanup round deletes, found with batched SELECTs per foreign key.

    With ``edges=False`` the SELECTs leave out referrers that are being deleted too wherever
    their keys are a few integer ranges (rows a factory wrote together are), so the usual
    cleanup reads no rows at all; the edges between deleted rows matter only once a row is
    blocked, and then the caller plans again with ``edges=True``.
    """

    def __init__(
        self,
        session: Session,
        targets: dict[Table, set[Key]],
        secondary: set[Table],
        include_dependents: bool,
        *,
        edges: bool,
    ) -> None:
        self.session = session
        self.want_edges = edges
        self.targets = targets
        self.deleting: dict[Table, set[Key]] = {t: set(k) for t, k in targets.items()}
        self.dependents: list[Row] = []
        self.blocked: dict[Row, str] = {}
        self.why: dict[Row, str] = {}
        self.edges: list[tuple[Row, Row]] = []
        self.include_dependents = include_dependents
        self.secondary = secondary
        self._find_referrers()
        self._propagate_blocks()

    def _find_referrers(self) -> None:
        """Fixed point: look up the referrers of rows newly added to the deletion set."""
        fresh = {t: set(k) for t, k in self.deleting.items()}
        undecided: dict[Row, list[tuple[Row, Row]]] = {}
        while fresh:
            added: dict[Table, set[Key]] = defaultdict(set)
            outsiders: dict[Table, set[Key]] = defaultdict(set)
            for fk in _constraints_into(fresh):
                child_table = fk.parent
                assert isinstance(child_table, Table)
                deleting = self.deleting.get(child_table, set())
                follow = self._may_follow(child_table)
                skip = None if self.want_edges else _as_ranges(_key_columns(child_table), deleting)
                for key, parent in self._referrers(fk, fresh[fk.referred_table], skip):
                    if key in deleting:
                        self.edges.append(((child_table, key), parent))
                    elif follow:
                        outsiders[child_table].add(key)
                    else:
                        self.blocked.setdefault(parent, child_table.name)
            for table, keys in outsiders.items():  # rare: association rows, opted-in dependents
                for key, refs in self._references(table, keys):
                    child = (table, key)
                    undecided.setdefault(child, []).extend((child, r) for r in refs)
            for child, edges in list(undecided.items()):
                if all(p[1] in self.deleting.get(p[0], ()) for _, p in edges):
                    del undecided[child]
                    self.deleting.setdefault(child[0], set()).add(child[1])
                    added[child[0]].add(child[1])
                    self.dependents.append(child)
                    self.edges.extend(edges)
            fresh = {t: k for t, k in added.items() if k}
        for child, edges in undecided.items():
            for _, parent in edges:
                if parent[1] in self.deleting.get(parent[0], ()):
                    self.blocked.setdefault(parent, child[0].name)
                    self.why.setdefault(parent, LINKS_OUTSIDE)

    def _may_follow(self, table: Table) -> bool:
        return self.include_dependents or table in self.secondary

    def _referrers(
        self, fk: ForeignKeyConstraint, keys: set[Key], skip: ColumnElement[bool] | None
    ) -> Iterable[tuple[Key, Row]]:
        """(referring row's key, referred row) per row that points at ``keys`` through ``fk``
        and is not matched by ``skip``: only the key and the foreign key's own columns are read
        (thousands of rows may point at one tenant)."""
        referring, referred = fk.parent, fk.referred_table
        assert isinstance(referring, Table)
        if not _targets_key(fk):
            return  # a foreign key to non-key columns: left to the database to refuse
        own = _key_columns(referring)
        local = [e.parent for e in _ordered_elements(fk)]
        width = len(own)
        connection = self.session.connection()
        for matching in _selecting(local, keys):
            found = select(*own, *local).where(matching)
            rows = connection.execute(found if skip is None else found.where(~skip)).all()
            if width == 1 and len(local) == 1:  # the common case, without slicing each row
                yield from [((key,), (referred, (parent,))) for key, parent in rows]
            else:
                yield from [(tuple(r[:width]), (referred, tuple(r[width:]))) for r in rows]

    def _references(self, table: Table, keys: set[Key]) -> Iterable[tuple[Key, list[Row]]]:
        """(key, every row it points at) for these rows of ``table``."""
        own = _key_columns(table)
        outgoing = [f for f in table.foreign_key_constraints if _targets_key(f)]
        parts = [[e.parent for e in _ordered_elements(f)] for f in outgoing]
        columns = [*own, *(c for part in parts for c in part)]
        width = len(own)
        connection = self.session.connection()
        for chunk in _chunks(keys):
            for row in connection.execute(select(*columns).where(_in(own, chunk))):
                values, refs, start = tuple(row), [], width
                for fk, part in zip(outgoing, parts, strict=True):
                    value = values[start : start + len(part)]
                    start += len(part)
                    if None not in value:
                        refs.append((fk.referred_table, value))
                yield values[:width], refs

    def _propagate_blocks(self) -> None:
        """A row that stays keeps every row it references."""
        by_child: dict[Row, list[Row]] = defaultdict(list)
        for child, parent in self.edges:
            by_child[child].append(parent)
        stack = list(self.blocked)
        while stack:
            row = stack.pop()
            for parent in by_child.get(row, ()):
                if parent not in self.blocked and parent != row:
                    self.blocked[parent] = row[0].name
                    self.why[parent] = LEFT_TOO
                    stack.append(parent)
        for (table, key), _ in list(self.blocked.items()):
            self.deleting.get(table, set()).discard(key)

    def tracked_deleted(self) -> dict[Table, set[Key]]:
        """Tracked keys that this round deletes."""
        return {t: keys & self.deleting.get(t, set()) for t, keys in self.targets.items()}

    def execute(self) -> None:
        """NULL the nullable foreign keys of cycles, then delete children first."""
        keep = {t: k for t, k in self.deleting.items() if k}
        order = sort_tables_and_constraints(list(keep))  # type: ignore[no-untyped-call]
        cyclic = [fk for table, fks in order if table is None for fk in fks]
        cyclic += [fk for t in keep for fk in t.foreign_key_constraints if fk.referred_table is t]
        for fk in cyclic:
            table = fk.parent
            if table in keep and all(c.nullable for c in fk.columns):
                for chunk in _chunks(keep[table]):
                    values = {c.key: None for c in fk.columns}
                    self.session.execute(
                        update(table).where(_in(_key_columns(table), chunk)).values(values)
                    )
        for table, _ in reversed(order):
            if table is not None and table in keep:
                for chunk in _chunks(keep[table]):
                    self.session.execute(delete(table).where(_in(_key_columns(table), chunk)))


_SECONDARY: dict[Any, set[Table]] = {}


def _secondary_of(mapper: Any) -> set[Table]:
    """The ``secondary`` (association) tables of a mapper's relationships (cached)."""
    found = _SECONDARY.get(mapper)
    if found is None:
        found = _SECONDARY[mapper] = {
            r.secondary for r in mapper.relationships if isinstance(r.secondary, Table)
        }
    return found


def _constraints_into(targets: dict[Table, set[Key]]) -> list[ForeignKeyConstraint]:
    """Every FK constraint, in the targets' metadata, that points at a target table."""
    found: dict[int, ForeignKeyConstraint] = {}
    for metadata in {t.metadata for t in targets}:
        for table in metadata.tables.values():
            for fk in table.foreign_key_constraints:
                if fk.referred_table in targets:
                    found[id(fk)] = fk
    return list(found.values())


def _key_columns(table: Table) -> list[Any]:
    """The columns that identify a row: the primary key, else every column."""
    return list(table.primary_key.columns) or list(table.columns)


def _targets_key(fk: ForeignKeyConstraint) -> bool:
    """True when the foreign key points at the referred table's whole primary key."""
    referred = {id(c) for c in fk.referred_table.primary_key.columns}
    return bool(referred) and {id(e.column) for e in fk.elements} == referred


def _ordered_elements(fk: ForeignKeyConstraint) -> list[Any]:
    """The FK's elements in the order of the referred primary key's columns."""
    position = {id(c): i for i, c in enumerate(fk.referred_table.primary_key.columns)}
    return sorted(fk.elements, key=lambda e: position[id(e.column)])


def _in(columns: list[Any], keys: Iterable[Key]) -> ColumnElement[bool]:
    keys = list(keys)
    if not keys:
        return false()
    if len(columns) == 1:
        return columns[0].in_([k[0] for k in keys])  # type: ignore[no-any-return]
    return or_(tuple_(*columns).in_(keys))


MAX_RANGES = 100
"""Most key ranges one referrer SELECT leaves out; more, and it reads every referrer."""


def _selecting(columns: list[Any], keys: set[Key]) -> list[ColumnElement[bool]]:
    """Conditions that together match exactly the rows whose ``columns`` hold ``keys``: one for
    a few integer ranges, else an IN per chunk. Only for SELECTs: a DELETE by range would lock
    the gaps beside it (InnoDB), so deletes name their keys."""
    ranges = _as_ranges(columns, keys)
    return [ranges] if ranges is not None else [_in(columns, c) for c in _chunks(keys)]


def _as_ranges(columns: list[Any], keys: set[Key]) -> ColumnElement[bool] | None:
    """``column BETWEEN a AND b OR ...`` matching exactly ``keys`` of one integer column, or None
    when there are several columns, the keys are not integers or they make over ``MAX_RANGES``
    ranges."""
    if len(columns) != 1 or not keys:
        return None
    values = sorted(k[0] for k in keys)
    if not all(type(v) is int for v in values):
        return None
    ranges: list[list[int]] = [[values[0], values[0]]]
    for value in values[1:]:
        if value == ranges[-1][1] + 1:
            ranges[-1][1] = value
        else:
            ranges.append([value, value])
            if len(ranges) > MAX_RANGES:
                return None
    return or_(*(columns[0].between(low, high) for low, high in ranges))


def _chunks(keys: Iterable[Key]) -> Iterable[list[Key]]:
    ordered = list(keys)
    for start in range(0, len(ordered), CHUNK_SIZE):
        yield ordered[start : start + CHUNK_SIZE]
