"""How created instances reach the database: a unit of work per root call, and one small strategy
object per persistence mode.

A root call (``create``, or one chunk of ``create_batch``) collects what its trees build and
writes it at the end in one flush: SQLAlchemy then inserts per table, parents before children,
in multi-row statements (insertmanyvalues, with RETURNING where the dialect has it). Reading a
not-yet-written row's key, foreign key or defaulted column during the build (a LazyAttribute on
``parent.id``, a post_generation hook) writes what is pending first, so values are the same as
with a flush per object. The strategies' ``save`` / ``save_many`` shape follows polyfactory's
persistence protocols; an AsyncSession strategy will plug in here.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from sqlalchemy import event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper, Session

from .context import set_for_block
from .errors import ConfigurationError
from .rowids import assign_ahead
from .session import held_session


class Persistence(Protocol):
    """Saves new instances through a session: one at a time, then the collected group."""

    deferred: bool
    """Whether ``save`` leaves the write to ``save_many`` at the end of the unit of work."""

    def save(self, session: Session, instance: Any) -> None:
        """Make ``instance`` part of ``session`` (and write it now unless deferred)."""

    def save_many(self, session: Session, instances: list[Any]) -> None:
        """Write the instances a unit of work collected."""


class AddOnly:
    """``sqlalchemy_session_persistence = None``: add to the session, let the caller flush."""

    deferred = True

    def save(self, session: Session, instance: Any) -> None:
        session.add(instance)

    def save_many(self, session: Session, instances: list[Any]) -> None:
        """Nothing to write: the caller flushes."""


class Flush(AddOnly):
    """``"flush"`` (our default): written at the end of the root call, in one flush (on SQLite
    with the new rows' keys assigned ahead where that lets it insert many rows at once)."""

    def save_many(self, session: Session, instances: list[Any]) -> None:
        assign_ahead(session)
        session.flush()


class Commit(AddOnly):
    """``"commit"``: INSERT and commit at once (an early write: the unit of work cannot wait)."""

    deferred = False

    def save(self, session: Session, instance: Any) -> None:
        super().save(session, instance)
        if held_session() is None:
            session.commit()
        else:  # lint holds every write in a SAVEPOINT it rolls back: a commit would escape it
            session.flush()


class Rows:
    """Rows mode (``insert_batch``): instances stay out of the session; their columns are
    written with Core when the unit of work writes."""

    deferred = True

    def save(self, session: Session, instance: Any) -> None:
        """Nothing yet: the instance is written with its unit's other rows."""

    def save_many(self, session: Session, instances: list[Any]) -> None:
        from .rows import write_rows

        write_rows(session, instances)


STRATEGIES: dict[str | None, Persistence] = {None: AddOnly(), "flush": Flush(), "commit": Commit()}
ROWS: Persistence = Rows()


def persistence_for(mode: str | None) -> Persistence:
    """The strategy for a ``sqlalchemy_session_persistence`` value."""
    try:
        return STRATEGIES[mode]
    except KeyError:
        raise ConfigurationError(
            f"Unknown sqlalchemy_session_persistence {mode!r}. Fix: use one of "
            f"{sorted(m for m in STRATEGIES if m)} or None."
        ) from None


class Saved(NamedTuple):
    """One instance a factory saved in a unit of work, with its session and batch index (a
    named tuple: one is made per saved row, and a frozen dataclass costs several times more)."""

    factory: Any
    instance: Any
    session: Session
    strategy: Persistence
    batch_index: int


@dataclass(eq=False)
class UnitOfWork:
    """What one root call (or batch) saved and has not written yet."""

    index: int = 0
    atomic: bool = False
    """True for a batch: everything it writes is undone together, so it tracks at the end."""
    rows: bool = False
    """Rows mode: every instance is written with Core (``insert_batch``)."""
    parent: UnitOfWork | None = None
    """The unit of the call this one is nested in (``None`` for a root call)."""
    undoable: bool = False
    """A root call that opens a SAVEPOINT before writing early (see ``before_early_write``)."""
    savepoints: dict[int, Any] = field(default_factory=dict)

    def before_early_write(self, session: Session) -> None:
        """Before a write the call makes ahead of its end (a value needs a pending row's key, a
        nested call, get_or_create's lookup): open the root's SAVEPOINT on ``session`` once, so
        a failure later in the call undoes that write too. A call that only writes at its end
        needs none (its failed flush writes nothing)."""
        chain = [self]
        while chain[-1].parent is not None:
            chain.append(chain[-1].parent)
        root = chain[-1]
        if not root.undoable or id(session) in root.savepoints:
            return
        # begin_nested() flushes what is pending first, which would put the call's own rows
        # outside its SAVEPOINT: they leave the session for that moment and come back in it.
        ours = [
            s.instance
            for unit in chain
            for s in unit.pending
            if s.session is session and sa_inspect(s.instance).pending
        ]
        for instance in ours:
            session.expunge(instance)
        root.savepoints[id(session)] = session.begin_nested()
        for instance in ours:
            session.add(instance)

    def release(self) -> None:
        """The call succeeded: keep what its SAVEPOINTs hold."""
        for savepoint in reversed(list(self.savepoints.values())):
            if savepoint.is_active:
                savepoint.commit()

    def undo(self) -> bool:
        """The call failed: roll its SAVEPOINTs back (whether it opened any)."""
        for savepoint in reversed(list(self.savepoints.values())):
            savepoint.rollback()  # also ends a SAVEPOINT a failed flush deactivated
        return bool(self.savepoints)

    pending: list[Saved] = field(default_factory=list)
    written: list[Saved] = field(default_factory=list)

    def save(
        self, factory_cls: Any, session: Session, instance: Any, strategy: Persistence
    ) -> None:
        """Save one instance through its strategy; deferred ones wait for ``write``."""
        _watch(type(instance))
        strategy.save(session, instance)
        saved = Saved(factory_cls, instance, session, strategy, self.index)
        (self.pending if strategy.deferred else self.written).append(saved)

    def write(self) -> None:
        """Write everything pending: one ``save_many`` per session and strategy."""
        groups: dict[tuple[int, int], list[Saved]] = {}
        for saved in self.pending:
            groups.setdefault((id(saved.session), id(saved.strategy)), []).append(saved)
        with set_for_block(_WRITING, True):
            for group in groups.values():
                first = group[0]
                first.strategy.save_many(first.session, [s.instance for s in group])
        self.written.extend(self.pending)
        self.pending.clear()

    def abandon(self) -> None:
        """After a failed call: keep (as written) what an early write already put in the
        database, so it is tracked and cleaned up; expunge what was never written, so no later
        flush of the session writes half a call."""
        for saved in self.pending:
            state = sa_inspect(saved.instance)
            if state.has_identity:
                self.written.append(saved)
            elif state.pending:
                saved.session.expunge(saved.instance)
        self.pending.clear()


_UNIT: ContextVar[UnitOfWork | None] = ContextVar("dotmac_unit_of_work", default=None)
_WRITING: ContextVar[bool] = ContextVar("dotmac_unit_writing", default=False)


def current_unit() -> UnitOfWork | None:
    """The unit of work of the root call being built in this context, if any."""
    return _UNIT.get()


def unit_of_work(unit: UnitOfWork) -> AbstractContextManager[None]:
    """Make ``unit`` the one that factories of this context save into."""
    return set_for_block(_UNIT, unit)


# -- early writes ------------------------------------------------------------------------------

_WATCHED: set[Any] = set()


def _watch(model: type[Any]) -> None:
    """Make reads of a pending row's key, foreign-key and defaulted columns write it first."""
    if model in _WATCHED:
        return
    _WATCHED.add(model)
    mapper: Mapper[Any] = sa_inspect(model)
    for prop in mapper.column_attrs:
        columns = prop.columns
        if any(_needs_written_row(c) for c in columns):
            event.listen(
                getattr(mapper.class_, prop.key), "init_scalar", _writer(prop.key), retval=True
            )


def _needs_written_row(column: Any) -> bool:
    return bool(
        column.primary_key
        or column.foreign_keys
        or column.default is not None
        or column.server_default is not None
    )


def _writer(key: str) -> Any:
    def write_first(target: Any, value: Any, dict_: dict[str, Any]) -> Any:
        """Flush the session of a pending row whose unset ``key`` is read during a build."""
        unit = _UNIT.get()
        if unit is None or _WRITING.get():
            return value
        if unit.rows:  # a row of this unit not written yet: write the unit's rows first
            if sa_inspect(target).key is None and any(s.instance is target for s in unit.pending):
                unit.write()
            return dict_.get(key, value)
        state = sa_inspect(target)
        if not state.pending or state.session is None:
            return value
        unit.before_early_write(state.session)
        with set_for_block(_WRITING, True):
            state.session.flush()
        return dict_.get(key, value)

    return write_first
