"""What the reliability state machines share: the figures the docs'
reliability page shows, the tenant check over every foreign key of a schema, and the rules and
invariants every schema's run has."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from itertools import combinations
from pathlib import Path
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from sqlalchemy import (
    ColumnElement,
    Engine,
    ForeignKeyConstraint,
    FromClause,
    MetaData,
    Select,
    Table,
    and_,
    func,
    select,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session

from dotmac_factoryboy import FactoryRegistry
from dotmac_factoryboy.errors import CleanupError

from .conftest import table_counts, wipe

FIGURES = Path(__file__).parent.parent / "docs" / "reliability-figures.json"
TABLE = FIGURES.with_suffix(".md")
COLUMNS = {
    "operations": "operations run",
    "rows_checked": "foreign rows checked",
    "faults": "faults injected",
    "bad_inputs": "bad inputs tried",
    "rows_lost_or_left": "rows lost or left",
    "cross_tenant_rows": "cross-tenant rows",
}


def new_figures() -> dict[str, int]:
    return dict.fromkeys(COLUMNS, 0)


def backend_name(engine: Engine) -> str:
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MySQL"}
    if getattr(engine.dialect, "is_mariadb", False):
        return "MariaDB"
    return names.get(engine.dialect.name, engine.dialect.name)


def record(run: str, figures: dict[str, int]) -> None:
    """Keep this run's figures for the reliability page (merged per run, e.g. "SQLite, ISP
    schema", and rendered as its table)."""
    try:
        known = json.loads(FIGURES.read_text())
    except (OSError, ValueError):  # none yet, or another run is writing it
        known = {}
    known[run] = figures
    FIGURES.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    lines = [
        "| run | " + " | ".join(COLUMNS.values()) + " |",
        "| --- | " + " | ".join("---:" for _ in COLUMNS) + " |",
    ]
    for name, values in sorted(known.items()):
        lines.append(f"| {name} | " + " | ".join(f"{values[k]:,}" for k in COLUMNS) + " |")
    TABLE.write_text("\n".join(lines) + "\n")


TenantColumn = Callable[[Table], "str | None"]
"""The name of a table's tenant column, or None for a table without one."""


def tenant_crossings(metadata: MetaData, tenant_column: TenantColumn) -> list[Select[tuple[int]]]:
    """One count per foreign key whose two ends carry a tenant: rows whose end points at a row of
    another tenant. A table without a tenant column of its own (an association) is checked
    between every two of its foreign keys: both ends must be one tenant's."""
    return list(_crossings(metadata, tenant_column))


def _crossings(metadata: MetaData, tenant_column: TenantColumn) -> Iterator[Select[tuple[int]]]:
    for table in metadata.sorted_tables:
        scoped = [fk for fk in table.foreign_key_constraints if tenant_column(fk.referred_table)]
        own = tenant_column(table)
        pairs = (
            [(None, fk) for fk in scoped if own not in fk.column_keys]
            if own is not None
            else list(combinations(scoped, 2))
        )
        for one, two in pairs:
            first = one.referred_table.alias() if one is not None else table
            second = two.referred_table.alias()
            joined = table.join(second, _on(two, second))
            if one is not None:
                joined = joined.join(first, _on(one, first))
            left = first.c[own or _tenant_of(one, tenant_column)]
            right = second.c[_tenant_of(two, tenant_column)]
            yield select(func.count()).select_from(joined).where(left != right)


def _tenant_of(fk: ForeignKeyConstraint | None, tenant_column: TenantColumn) -> str:
    name = tenant_column(fk.referred_table) if fk is not None else None
    assert name is not None
    return name


def _on(fk: ForeignKeyConstraint, parent: FromClause) -> ColumnElement[bool]:
    return and_(*(e.parent == parent.c[e.column.key] for e in fk.elements))


def alive(instance: Any) -> bool:
    """Whether a row made earlier in the run is still in the session (cleanups detach it)."""
    return sa_inspect(instance).session is not None


class Run(RuleBasedStateMachine):
    """What every schema's run shares: nested registry scopes, partial cleanups and commits
    among its own rules; after every step the foreign rows are unchanged, every tracked row is
    present and no row crosses tenants; at the end nothing created is left."""

    session: Session
    figures: dict[str, int]
    registries: tuple[FactoryRegistry, ...]
    crossings: list[Select[tuple[int]]]

    def __init__(self) -> None:
        super().__init__()
        self.scopes = ExitStack()
        self.depth = 0
        self.allowed: list[Any] = []  # rows made inside allow_cross_tenant(): one crossing each
        self.enter_scopes()
        self.session.rollback()
        if not self.pristine():  # an example before this one failed: start from the app's rows
            self.session.close()
            wipe(self.session.get_bind())
            self.prefill(self.session.get_bind())

    def prefill(self, engine: Any) -> None:
        """Write the application's rows (by plain SQL, not factories)."""
        raise NotImplementedError

    def pristine(self) -> bool:
        try:
            self.check_foreign(final=True)
        except AssertionError:
            return False
        return not any(self.created_left().values())

    def enter_scopes(self) -> None:
        for each in self.registries:
            self.scopes.enter_context(each.scope())

    def step(self) -> None:
        self.figures["operations"] += 1

    def tracked(self) -> list[Any]:
        return [instance for each in self.registries for instance in each.instances]

    def check_foreign(self, final: bool = False) -> None:
        """Assert the foreign rows are as the application wrote them (``final``: every column)."""
        raise NotImplementedError

    def created_left(self) -> dict[str, int]:
        """Rows the run created that are still in the database, per table."""
        raise NotImplementedError

    def refused(self, call: Callable[[], Any], expected: type[BaseException]) -> BaseException:
        """Run a call that must fail; assert it wrote and tracked nothing."""
        before, tracked = table_counts(self.session), self.tracked()
        with pytest.raises(expected) as info:
            call()
        assert not isinstance(info.value, AssertionError), info.value
        assert table_counts(self.session) == before, "a failed call left rows"
        assert self.tracked() == tracked, "a failed call left tracked rows"
        return info.value

    def clean(self) -> None:
        """``cleanup_all()`` of the current scope. Rows that rows of an enclosing scope still
        reference (directly or through an association row) may stay: then they are still
        tracked, and the error says why; nothing may stay for a row nobody tracked."""
        for each in self.registries:
            error: CleanupError | None = None
            try:
                each.cleanup_all()
            except CleanupError as exc:
                error = exc
            if error is not None:
                self.check_left(error)

    def check_left(self, error: CleanupError) -> None:
        assert error.blocked and not error.errors, error
        tracked = [sa_inspect(i) for i in self.tracked()]
        held = {(state.mapper.local_table.name, state.identity) for state in tracked}
        makers = {state.mapper.local_table.name for state in tracked}
        for row in error.blocked:
            assert (row.table, row.primary_key) in held, f"{row} is no longer tracked"
            assert row.why or row.referenced_by in makers, f"{row}: {error}"

    @precondition(lambda self: self.depth < 3)
    @rule()
    def open_scope(self) -> None:
        self.step()
        self.enter_scopes()
        self.depth += 1

    @precondition(lambda self: self.depth > 0)
    @rule(clean=st.booleans())
    def close_scope(self, clean: bool) -> None:
        self.step()
        if clean:
            self.clean()
        self.scopes.close()  # closes every scope; reopen the machine's own
        self.scopes = ExitStack()
        self.enter_scopes()
        self.depth = 0

    @rule()
    def commit(self) -> None:
        self.step()
        self.session.commit()

    @invariant()
    def foreign_rows_are_untouched(self) -> None:
        self.check_foreign()

    def present(self, instance: Any) -> bool:
        """Whether the row of ``instance`` is in the database (read by its key)."""
        mapper = sa_inspect(type(instance))
        key = sa_inspect(instance).identity
        assert key is not None, instance
        where = [c == v for c, v in zip(mapper.primary_key, key, strict=True)]
        return self.session.scalar(select(func.count()).select_from(mapper).where(*where)) == 1

    @invariant()
    def tracked_rows_are_present(self) -> None:
        for instance in self.tracked():
            assert self.present(instance), instance

    @invariant()
    def no_created_row_crosses_tenants(self) -> None:
        """Every crossing is one of the rows made inside ``allow_cross_tenant()``."""
        self.session.flush()
        crossing = sum(int(self.session.scalar(query) or 0) for query in self.crossings)
        # a cleanup detaches what it deleted (its key may be reused by a later row)
        allowed = sum(1 for i in self.allowed if alive(i) and self.present(i))
        self.figures["cross_tenant_rows"] += max(crossing - allowed, 0)
        assert crossing == allowed, f"{crossing} crossing rows, {allowed} allowed"

    def teardown(self) -> None:
        try:
            self.check_foreign(final=True)
            self.clean()
        finally:
            self.scopes.close()
            for each in self.registries:
                each.cleanup_all()  # what closing handed to the test's own scope
        left = self.created_left()
        self.figures["rows_lost_or_left"] += sum(left.values())
        assert not any(left.values()), f"created rows left: {left}"
