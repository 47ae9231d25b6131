"""PostgreSQL ``COPY`` for rows mode: new rows streamed through psycopg's ``Cursor.copy``, their
keys drawn from the key column's sequence first.

An ``INSERT ... RETURNING`` of many rows costs PostgreSQL and psycopg far more than ``COPY`` of
the same rows (psycopg parses every placeholder of the long statement in Python; the server
plans and evaluates every VALUES row). ``COPY`` returns nothing, so it only writes rows whose
values are all known before they go out: the key is given, or drawn from the column's sequence
in order (the values row-by-row inserts would have taken); every other column is in the row, has
a constant Python default, or has no default at all (NULL). Anything else (a server default,
a callable default, a computed or ``GENERATED ALWAYS`` column, a type outside ``COPYABLE`` or one that wraps SQL
around its bound values, the async driver) keeps the ``INSERT``. Values go through each column type's bind processor, as
an ``INSERT`` sends them.

A ``COPY`` is not a cursor execution: ``before_cursor_execute`` listeners do not see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, text, types
from sqlalchemy.exc import DBAPIError

COPY_FROM = 64
"""Fewest rows of one shape worth a COPY (it costs a round trip more than an INSERT: the keys)."""

COPYABLE = (
    types.Integer,
    types.String,
    types.Numeric,
    types.Date,
    types.DateTime,
    types.Time,
    types.Boolean,
    types.Uuid,
)
"""Column types whose values psycopg writes in COPY's text format exactly as the server parses
them for the column (``Enum`` and ``Text`` are ``String``, ``Float`` is ``Numeric``)."""


@dataclass(frozen=True)
class CopyPlan:
    """How rows with one set of columns go out by COPY."""

    statement: str
    columns: tuple[str, ...]
    """Column keys in the statement's order, the key column first when it is drawn."""
    drawn: str | None
    """The key column's key when its values come from its sequence (else rows carry it)."""
    defaults: dict[str, Any]
    """Constant values of columns the rows leave out (a Python default, else NULL)."""
    processors: tuple[Any, ...]
    """Per column, the type's bind processor or None."""


def copy_plan(connection: Any, table: Table, given: tuple[str, ...]) -> CopyPlan | None:
    """How rows carrying the columns ``given`` go into ``table`` by COPY, or None when COPY could
    not write them exactly as an INSERT would (cached per table, columns and dialect)."""
    dialect = connection.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg" or dialect.is_async:
        return None
    cached = (table, given, dialect)
    if cached not in _PLANS:
        _PLANS[cached] = _planned(dialect, table, given)
    return _PLANS[cached]


_PLANS: dict[tuple[Table, tuple[str, ...], Any], CopyPlan | None] = {}


def _planned(dialect: Any, table: Table, given: tuple[str, ...]) -> CopyPlan | None:
    if not all(_copyable(c) for c in table.columns):
        return None
    missing = [c for c in table.primary_key.columns if c.key not in given]
    if len(missing) > 1:
        return None
    drawn = None
    if missing:
        key = missing[0]
        identity = key.identity
        if table.autoincrement_column is not key or (identity is not None and identity.always):
            return None
        if not isinstance(key.type, types.Integer) or key.default is not None:
            return None
        drawn = str(key.key)
    defaults: dict[str, Any] = {}
    for column in table.columns:
        if column.key in given or column.key == drawn:
            continue
        default = column.default
        if not filled_by_insert(column):
            defaults[column.key] = None
        elif column.server_default is None and default is not None and default.is_scalar:
            defaults[column.key] = default.arg  # type: ignore[attr-defined]
        else:  # the database fills it, or a callable default does
            return None
    columns = tuple(str(c) for c in ((drawn,) if drawn else ()) + given + tuple(defaults))
    quote = dialect.identifier_preparer
    names = ", ".join(quote.quote(table.columns[c].name) for c in columns)
    processors = tuple(
        table.columns[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns
    )
    return CopyPlan(
        statement=f"COPY {quote.format_table(table)} ({names}) FROM STDIN",
        columns=columns,
        drawn=drawn,
        defaults=defaults,
        processors=processors,
    )


def filled_by_insert(column: Any) -> bool:
    """Whether an INSERT that leaves ``column`` out fills it with something other than NULL: a
    ``default``, or a ``server_default`` (which computed and identity columns have too)."""
    return column.default is not None or column.server_default is not None


def _copyable(column: Any) -> bool:
    kind = column.type
    if not _plain_binding(kind):
        return False
    if isinstance(kind, types.TypeDecorator):
        kind = kind.impl_instance
    return isinstance(kind, COPYABLE)


def _plain_binding(kind: Any) -> bool:
    """Whether the type wraps no SQL around a bound value (``bind_expression``): COPY sends
    values, not expressions."""
    decorated = isinstance(kind, types.TypeDecorator)
    own = types.TypeDecorator if decorated else types.TypeEngine
    if type(kind).bind_expression is not own.bind_expression:
        return False
    return _plain_binding(kind.impl_instance) if decorated else True


def copy_rows(connection: Any, table: Table, plan: CopyPlan, rows: list[dict[str, Any]]) -> bool:
    """Write ``rows`` by COPY. Each row gains its drawn key and the plan's defaults, so the
    caller hands the instances what an INSERT would have told them. False, writing nothing, when
    the key column has no sequence to draw from."""
    if plan.drawn is not None:
        keys = _draw_keys(connection, table, plan.drawn, len(rows))
        if keys is None:
            return False
        for row, key in zip(rows, keys, strict=True):
            row[plan.drawn] = key
    for row in rows:
        row.update(plan.defaults)
    columns, processors = plan.columns, plan.processors
    processed = [(i, p) for i, p in enumerate(processors) if p is not None]
    raw = connection.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(plan.statement) as copy:
            for row in rows:
                values = [row[c] for c in columns]
                for i, process in processed:
                    values[i] = process(values[i])
                copy.write_row(values)
    except connection.dialect.loaded_dbapi.Error as exc:
        # an INSERT's failure reaches the caller as SQLAlchemy's DBAPIError: so does this one
        raise DBAPIError.instance(
            plan.statement, None, exc, connection.dialect.loaded_dbapi.Error
        ) from exc
    return True


def _draw_keys(connection: Any, table: Table, column: str, count: int) -> list[int] | None:
    """``count`` values of the key column's sequence, in the order row-by-row inserts take them
    (None when the column owns no sequence: ``nextval(NULL)`` is NULL and draws nothing)."""
    name = connection.dialect.identifier_preparer.format_table(table)
    drawn = connection.execute(
        text("SELECT nextval(pg_get_serial_sequence(:table, :column)) FROM generate_series(1, :n)"),
        {"table": name, "column": table.columns[column].name, "n": count},
    )
    keys = [key for (key,) in drawn]
    if None in keys:
        return None
    return sorted(keys)
