"""Table dumps that compare two databases' contents, whatever their surrogate keys.

A row's fingerprint is its column values with every foreign key replaced by the fingerprint of the
row it points at, and generated keys (autoincrement, uuid4 defaults) left out: two seeds that wrote the same data in another
order (``--jobs 2``) have equal dumps.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import Engine, MetaData, Table, select


def dump(engine: Engine, metadata: MetaData) -> dict[str, list[str]]:
    """Each table's sorted row fingerprints."""
    with engine.connect() as connection:
        rows = {
            t.name: [dict(r) for r in connection.execute(select(t)).mappings()]
            for t in metadata.sorted_tables
        }
    by_key = {t.name: {_key(t, row): row for row in rows[t.name]} for t in metadata.sorted_tables}
    memo: dict[tuple[str, Any], str] = {}

    def fingerprint(table: Table, row: dict[str, Any]) -> str:
        memo_key = (table.name, _key(table, row))
        if memo_key not in memo:
            parts = []
            for column in table.columns:
                value = row[column.name]
                foreign = next(iter(column.foreign_keys), None)
                if foreign is not None and value is not None:
                    parent = foreign.column.table
                    target = _find(by_key[parent.name], parent, foreign.column.name, value)
                    parts.append((column.name, fingerprint(parent, target)))
                elif not _surrogate(table, column.name):
                    parts.append((column.name, repr(value)))
            memo[memo_key] = hashlib.sha1(repr(parts).encode()).hexdigest()
        return memo[memo_key]

    return {
        t.name: sorted(fingerprint(t, row) for row in rows[t.name]) for t in metadata.sorted_tables
    }


def _key(table: Table, row: dict[str, Any]) -> Any:
    return tuple(row[c.name] for c in table.primary_key.columns) or id(row)


def _find(rows: dict[Any, dict[str, Any]], table: Table, column: str, value: Any) -> dict[str, Any]:
    pk = [c.name for c in table.primary_key.columns]
    if pk == [column]:
        return rows[(value,)]
    return next(r for r in rows.values() if r[column] == value)


def _surrogate(table: Table, column: str) -> bool:
    """A one-column primary key the database or the model generates (autoincrement, a uuid4
    default): numbering, not data."""
    pk = list(table.primary_key.columns)
    if len(pk) != 1 or pk[0].name != column:
        return False
    return pk[0].default is not None or (
        pk[0].autoincrement in (True, "auto") and pk[0].type.python_type is int
    )
