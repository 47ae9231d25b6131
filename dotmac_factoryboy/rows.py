"""Rows mode (``insert_batch``): the same plan, declarations and draws as ``create_batch``, but
the built instances never join the session; their column values are written with Core.

Parents are inserted before children, table by table in foreign-key order, in multi-row
statements whose ``RETURNING`` (sorted by parameter order) gives each row its generated key;
children take their parents' keys from the instances. Each written instance then becomes a
detached row with its identity (``make_transient_to_detached``), so the registry tracks it and
cleanup deletes it like any created row.

On PostgreSQL large groups go by COPY instead (``pgcopy``). Many-to-many collections set on
the rows become their association rows once every row has its key.

What needs instances in a session is refused when the call is planned: ``_create`` overrides,
``get_or_create``, post-generation declarations (``post_generation``, ``RelatedFactory``),
mapper-level insert events and one-to-many collections. When written, before anything of that
write goes out: a collection whose members do not point back at their row, and a many-to-many
member that is neither in the database nor in the write.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from factory.declarations import PostGenerationDeclaration
from sqlalchemy import Table, insert
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import InstanceState, Mapper, Session, make_transient_to_detached
from sqlalchemy.orm.attributes import instance_state, set_committed_value
from sqlalchemy.orm.interfaces import MANYTOONE

from .errors import RowsModeError
from .factory_boy_adapter import overrides
from .pgcopy import COPY_FROM, copy_plan, copy_rows, filled_by_insert
from .rowids import AHEAD_FROM, next_rowids, rowid_column, take_write_lock

INSERT_EVENTS = ("before_insert", "after_insert")


def refuse_what_needs_instances(
    root: Any, nodes: Iterable[Any], running_hooks: Callable[[Any], list[str]]
) -> None:
    """``RowsModeError`` naming the first place of the plan that rows mode cannot serve;
    ``running_hooks(node)`` names the post-generation declarations that run at a place."""
    for node in nodes:
        if node.role == "pinned":  # set to the tree's tenant, not built
            continue
        factory_cls, where = node.factory, node.label or "the root"
        name = factory_cls.__name__
        reason = None
        hooks = {*running_hooks(node), *_post_values(node)}
        if overrides(factory_cls, "_create"):
            reason = f"{name} overrides _create"
        elif factory_cls._meta.sqlalchemy_get_or_create:
            reason = f"{name} uses sqlalchemy_get_or_create"
        elif hooks:
            reason = f"{name} has post-generation declarations ({', '.join(sorted(hooks))})"
        else:
            reason = _mapping_reason(sa_inspect(factory_cls._meta.model), node)
        if reason is not None:
            raise RowsModeError(
                f"{root.__name__}.insert_batch: at {where}, {reason}, which need ORM instances "
                f"in a session; rows mode writes columns with Core. Fix: use "
                f"{root.__name__}.create_batch(...) for this call."
            )


def _mapping_reason(mapper: Mapper[Any], node: Any) -> str | None:
    """What of the model's mapping or the place's fields rows mode cannot write, if anything."""
    model = mapper.class_.__name__
    events = [e for e in INSERT_EVENTS if getattr(mapper.dispatch, e)]
    if events:
        return f"{model} has mapper events ({', '.join(events)})"
    if mapper.inherits is not None:
        return f"{model} inherits another mapped class (more than one table per row)"
    collections = sorted(
        name
        for name, value in node.fields.items()
        if name in mapper.relationships
        and mapper.relationships[name].direction is not MANYTOONE
        and not _associable(mapper.relationships[name])
        and value.value is not None
    )
    if collections:
        return f"the call sets the collection {model}.{', '.join(collections)}"
    return None


def _associable(rel: Any) -> bool:
    """A many-to-many relationship whose links rows mode writes itself: through a plain
    association table whose columns the two sides' keys fill."""
    return (
        isinstance(rel.secondary, Table)
        and not rel.viewonly
        and bool(rel.synchronize_pairs)
        and bool(rel.secondary_synchronize_pairs)
    )


def _reverse_of(rel: Any) -> str | None:
    """The name of a relationship's other side on the related class (``back_populates`` or
    ``backref``), if it has one."""
    reverse = rel.back_populates or (
        rel.backref if isinstance(rel.backref, str) else rel.backref and rel.backref[0]
    )
    return str(reverse) if reverse else None


def _post_values(node: Any) -> list[str]:
    return [k for k, v in node.fields.items() if isinstance(v.value, PostGenerationDeclaration)]


def new_row(model_class: type[Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The instance rows mode writes. With SQLAlchemy's own constructor and no validators or
    column ``set`` listeners, its values are set as committed state, without attribute events,
    so no backref puts it in a parent's collection (where a later flush would try to add it);
    otherwise through the model's constructor, as ``create_batch`` does."""
    shape = _shape(model_class)
    mapper = shape.mapper
    if args or not shape.plain:
        return model_class(*args, **kwargs)
    if kwargs.keys() <= shape.scalars:
        instance = shape.new_instance()
        # Into the new state's dict, as SQLAlchemy's loader fills a loaded row: for a new state
        # (nothing committed, expired or pending) this is what set_committed_value does.
        _state(instance).dict.update(kwargs)
        return instance
    if any(key not in mapper.attrs for key in kwargs):
        return model_class(*args, **kwargs)
    instance = shape.new_instance()
    for key, value in kwargs.items():
        set_committed_value(instance, key, value)
    return instance


@dataclass(frozen=True)
class _Shape:
    """What rows mode reads of a mapped class for every row, worked out once per class."""

    mapper: Mapper[Any]
    plain: bool
    """Building through the constructor runs nothing but attribute assignment."""
    scalars: frozenset[str]
    """Column attributes and many-to-one relationships: plain values in the instance's dict."""
    columns: tuple[tuple[str, str], ...]
    """(attribute key, column key) of every column attribute."""
    parents: tuple[Any, ...]
    """Many-to-one relationships: the parents whose keys a row takes."""
    backrefs: tuple[tuple[str, str], ...]
    """(relationship key, the parent's collection) of many-to-one relationships with a reverse."""
    primary: tuple[str, ...]
    """The attribute keys of the table's primary key columns, in order."""
    linked: tuple[tuple[str, str], ...]
    """(attribute key, column key) of the columns a row takes from its parents."""
    self_parents: tuple[str, ...]
    """Many-to-one relationships to the same class (a row's parent may be in the same batch)."""
    attribute_of: dict[str, str]
    """Column key -> attribute key, for every column attribute."""
    holders: tuple[Any, ...]
    """Collections that only the children's own foreign keys may carry (one-to-many and the
    like): set on a row, their members must point back at it."""
    links: tuple[Any, ...]
    """Many-to-many relationships whose association rows rows mode writes (``_associable``)."""
    new_instance: Callable[[], Any]
    """A new instance with its state, without running the constructor."""


def _state(instance: Any) -> InstanceState[Any]:
    """``inspect(instance)`` without its dispatch (rows mode asks it several times a row)."""
    try:
        state: InstanceState[Any] = instance_state(instance)
    except AttributeError:  # custom instrumentation keeps the state elsewhere
        state = sa_inspect(instance)
    return state


_SHAPES: dict[type[Any], _Shape] = {}


def _shape(model_class: type[Any]) -> _Shape:
    found = _SHAPES.get(model_class)
    if found is None:
        mapper: Mapper[Any] = sa_inspect(model_class)
        manager = mapper.class_manager
        parents = tuple(r for r in mapper.relationships if r.direction is MANYTOONE)
        backrefs = [(rel.key, reverse) for rel in parents if (reverse := _reverse_of(rel))]
        found = _SHAPES[model_class] = _Shape(
            mapper=mapper,
            plain=(
                manager.original_init is mapper.registry.constructor
                and not mapper.validators
                and not any(manager[prop.key].dispatch.set for prop in mapper.column_attrs)
            ),
            scalars=frozenset([*(p.key for p in mapper.column_attrs), *(r.key for r in parents)]),
            columns=tuple((p.key, str(p.columns[0].key)) for p in mapper.column_attrs),
            parents=parents,
            backrefs=tuple(backrefs),
            primary=tuple(
                mapper.get_property_by_column(c).key for c in mapper.local_table.primary_key
            ),
            new_instance=manager.new_instance,
            linked=tuple(
                (mapper.get_property_by_column(c).key, str(c.key))
                for c in {c: None for r in parents for c in r.local_columns}
                if mapper.columns.contains_column(c)
            ),
            self_parents=tuple(r.key for r in parents if r.mapper is mapper),
            attribute_of={str(p.columns[0].key): p.key for p in mapper.column_attrs},
            holders=tuple(
                r
                for r in mapper.relationships
                if (r.direction is not MANYTOONE or r.secondary is not None) and not _associable(r)
            ),
            links=tuple(r for r in mapper.relationships if _associable(r)),
        )
    return found


def write_rows(session: Session, instances: list[Any]) -> None:
    """Insert the instances' rows with Core, parents first, and make each a detached row."""
    by_mapper: dict[Mapper[Any], list[Any]] = defaultdict(list)
    for instance in instances:
        by_mapper[_state(instance).mapper].append(instance)
    writing = {id(i) for i in instances}
    for mapper in by_mapper:
        _refuse_collections(mapper, by_mapper[mapper], writing)
    connection = session.connection()
    for table in _parents_first(by_mapper):
        for mapper in (m for m in by_mapper if m.local_table is table):
            waiting = by_mapper[mapper]
            if not _shape(mapper.class_).self_parents:
                _insert(connection, mapper, table, waiting)
                continue
            while waiting:  # a self-reference: rows whose parent is written go first
                ready = [i for i in waiting if _parents_written(mapper, i)]
                if not ready:
                    raise RowsModeError(
                        f"{mapper.class_.__name__}: rows reference each other in a cycle. Fix: "
                        "use create_batch(...) for this call."
                    )
                _insert(connection, mapper, table, ready)
                done = {id(i) for i in ready}
                waiting = [i for i in waiting if id(i) not in done]
    _link(connection, by_mapper)


def _parents_first(by_mapper: dict[Mapper[Any], list[Any]]) -> list[Table]:
    tables = {m.local_table for m in by_mapper if isinstance(m.local_table, Table)}
    ordered = [t for m in {t.metadata for t in tables} for t in m.sorted_tables if t in tables]
    return ordered


def _refuse_collections(mapper: Mapper[Any], instances: list[Any], writing: set[int]) -> None:
    """Refuse, before anything is written, collections rows mode cannot write: one-to-many ones
    whose members do not point back at the row, and many-to-many members that are neither in the
    database nor in this write (``writing``: their ids)."""
    shape = _shape(mapper.class_)
    if not shape.holders and not shape.links:
        return
    model = mapper.class_.__name__
    for instance in instances:
        values = _state(instance).dict
        for rel in shape.holders:
            members = values.get(rel.key)
            if members and not _held_by_children(instance, rel, members):
                raise RowsModeError(
                    f"{model}.{rel.key} is a collection set on the rows; rows mode writes each "
                    "table's own columns only. Fix: use create_batch(...) for this call."
                )
        for rel in shape.links:
            for member in _members(values.get(rel.key)):
                if id(member) not in writing and _state(member).key is None:
                    raise RowsModeError(
                        f"{model}.{rel.key} holds {member!r}, which is neither in the database "
                        "nor built by this call, so its key is unknown. Fix: write it first "
                        "(create it, or flush the session), or use create_batch(...)."
                    )


def _members(collection: Any) -> list[Any]:
    if collection is None:
        return []
    return list(collection) if isinstance(collection, Iterable) else [collection]


def _link(connection: Any, by_mapper: dict[Mapper[Any], list[Any]]) -> None:
    """Write the association rows of the rows' many-to-many collections (every row and member
    has its key now), and expire a persistent member's reverse collection, which lacks them."""
    rows: dict[Table, list[dict[str, Any]]] = defaultdict(list)
    for mapper, instances in by_mapper.items():
        for rel in _shape(mapper.class_).links:
            reverse = _reverse_of(rel)
            for instance in instances:
                members = _members(_state(instance).dict.get(rel.key))
                if not members:
                    continue
                own = {str(s.key): _column_value(instance, c) for c, s in rel.synchronize_pairs}
                for member in members:
                    pairs = rel.secondary_synchronize_pairs
                    rows[rel.secondary].append(
                        {**own, **{str(s.key): _column_value(member, c) for c, s in pairs}}
                    )
                    if reverse:
                        _forget_loaded(member, reverse)
    for table, table_rows in rows.items():
        _write_plain(connection, table, table_rows)


def _column_value(instance: Any, column: Any) -> Any:
    """A written row's value of ``column``: from its identity for a key column (readable when
    the row is detached and expired), else from the row."""
    state = _state(instance)
    position, key = _place(state.mapper, column)
    identity = state.identity
    if position is not None and identity is not None:
        return identity[position]
    return getattr(instance, key)


_PLACES: dict[tuple[Mapper[Any], Any], tuple[int | None, str]] = {}


def _place(mapper: Mapper[Any], column: Any) -> tuple[int | None, str]:
    """A column's place in the mapper's identity (None for a column outside the key) and its
    attribute key: worked out once per mapper and column."""
    found = _PLACES.get((mapper, column))
    if found is None:
        position = next((i for i, c in enumerate(mapper.primary_key) if c is column), None)
        found = _PLACES[(mapper, column)] = (position, mapper.get_property_by_column(column).key)
    return found


def _write_plain(connection: Any, table: Table, rows: list[dict[str, Any]]) -> None:
    """Rows that carry every key they need (association rows): by COPY where it pays, else one
    multi-row INSERT per set of columns."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[tuple(row)].append(row)
    for given, group in groups.items():
        plan = copy_plan(connection, table, given) if len(group) >= COPY_FROM else None
        if plan is None or not copy_rows(connection, table, plan, group):
            connection.execute(insert(table), group)


def _held_by_children(instance: Any, rel: Any, members: Any) -> bool:
    """Whether a collection holds only children that point back at ``instance`` (a backref the
    ORM filled when each child was given its parent): their own foreign keys carry the link."""
    if rel.secondary is not None:
        return False
    children = members if isinstance(members, Iterable) else [members]
    return all(_points_at(child, instance) for child in children)


def _points_at(child: Any, parent: Any) -> bool:
    state = _state(child)
    return any(state.dict.get(rel.key) is parent for rel in _shape(state.class_).parents)


def _parents_written(mapper: Mapper[Any], instance: Any) -> bool:
    values = _state(instance).dict
    for key in _shape(mapper.class_).self_parents:
        parent = values.get(key)
        if parent is not None and _state(parent).key is None:
            return False
    return True


def _insert(connection: Any, mapper: Mapper[Any], table: Table, instances: list[Any]) -> None:
    """One multi-row INSERT per shape of row, keys returned in parameter order (on SQLite,
    assigned ahead: see ``rowids``)."""
    shape = _shape(mapper.class_)
    dicts = [_state(i).dict for i in instances]
    rows = [_row(shape, d) for d in dicts]
    primary = list(table.primary_key.columns)
    groups: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for position, row in enumerate(rows):
        groups[tuple(row)].append(position)  # _row lists a shape's columns in one order
    rowid = rowid_column(table, connection.dialect)
    for given, positions in groups.items():
        # the key, and what the database or a column default filled: the instance learns both,
        # as the ORM's flush would tell it
        missing = [c for c in table.columns if c.key not in given and not c.primary_key]
        filled = [c for c in missing if filled_by_insert(c)]
        nulls = {str(c.key): None for c in missing if not filled_by_insert(c)}
        if nulls:  # NULL either way: written explicitly, and the instance knows them already
            attributes = {shape.attribute_of[c]: None for c in nulls if c in shape.attribute_of}
            for p in positions:
                rows[p].update(nulls)
                dicts[p].update(attributes)
            given = tuple(rows[positions[0]])
        plan = copy_plan(connection, table, given) if len(positions) >= COPY_FROM else None
        if plan is not None and copy_rows(connection, table, plan, [rows[p] for p in positions]):
            set_back = tuple(plan.defaults)
            for p in positions:
                identity = tuple(rows[p][c.key] for c in primary)
                _written(shape, instances[p], dicts[p], rows[p], identity, set_back)
            continue
        keys = None
        if rowid is not None and rowid.key not in given and len(positions) >= AHEAD_FROM:
            take_write_lock(connection, table)
            keys = next_rowids(connection, table, len(positions))
        if keys is not None:
            for position, key in zip(positions, keys, strict=True):
                rows[position][rowid.key] = key  # the row dicts are this write's own
            _insert_keyed(connection, shape, rowid, filled, instances, dicts, rows, positions)
            continue
        statement = insert(table).returning(*primary, *filled, sort_by_parameter_order=True)
        result = connection.execute(statement, [rows[p] for p in positions])
        for position, returned in zip(positions, result, strict=True):
            _returned(shape, instances[position], dicts[position], rows[position], filled, returned)


def _insert_keyed(
    connection: Any,
    shape: _Shape,
    rowid: Any,
    filled: list[Any],
    instances: list[Any],
    dicts: list[dict[str, Any]],
    rows: list[dict[str, Any]],
    positions: list[int],
) -> None:
    """Rows that carry their keys, in multi-row statements; what the database filled comes
    back matched by key (a RETURNING, unordered) when there is any."""
    table = rowid.table
    key = rowid.key
    if not filled:
        connection.execute(insert(table), [rows[p] for p in positions])
        for p in positions:
            _written(shape, instances[p], dicts[p], rows[p], (rows[p][key],))
        return
    result = connection.execute(
        insert(table).returning(rowid, *filled), [rows[p] for p in positions]
    )
    by_key = {values[0]: tuple(values) for values in result}
    for p in positions:
        _returned(shape, instances[p], dicts[p], rows[p], filled, by_key[rows[p][key]])


def _returned(
    shape: _Shape,
    instance: Any,
    values: dict[str, Any],
    row: dict[str, Any],
    filled: list[Any],
    returned: Sequence[Any],
) -> None:
    """Hand an instance what its INSERT returned: its key, and the columns the database filled."""
    keys = len(returned) - len(filled)
    if filled:
        row = {**row, **{c.key: v for c, v in zip(filled, returned[keys:], strict=True)}}
        _written(shape, instance, values, row, tuple(returned[:keys]), [str(c.key) for c in filled])
    else:
        _written(shape, instance, values, row, tuple(returned[:keys]))


def _row(shape: _Shape, values: dict[str, Any]) -> dict[str, Any]:
    """An instance's column values (its state's dict) by column key, foreign keys taken from its
    parents."""
    row = {column: values[key] for key, column in shape.columns if key in values}
    for rel in shape.parents:
        parent = values.get(rel.key)
        if parent is not None:
            _keys_from(rel, parent, row)
    return row


def _keys_from(rel: Any, parent: Any, row: dict[str, Any]) -> None:
    """Set the child's foreign-key values from its parent (``_column_value``)."""
    for local, remote in rel.local_remote_pairs:
        row[local.key] = _column_value(parent, remote)


def _written(
    shape: _Shape,
    instance: Any,
    values: dict[str, Any],
    row: dict[str, Any],
    keys: tuple[Any, ...],
    filled: Sequence[str] = (),
) -> None:
    """Give the instance (``values``: its state's dict) its key, the foreign keys it took from
    its parents and what the database filled, as the flush leaves them; then make it a detached
    row with an identity. Its other columns are already its own values (the row was read from
    them)."""
    values.update(zip(shape.primary, keys, strict=True))
    for key, column in shape.linked:
        if column in row:
            values[key] = row[column]
    for column in filled:
        values[shape.attribute_of[column]] = row[column]
    make_transient_to_detached(instance)
    if shape.plain:  # new_row set its values without attribute events: no backref fired
        return
    for key, collection in shape.backrefs:  # a persistent parent's collection took it
        parent = values.get(key)
        if parent is not None:
            _forget_backref(parent, collection)


def _forget_loaded(row: Any, collection: str) -> None:
    """Expire a persistent row's loaded collection that a write outside the session changed."""
    state = _state(row)
    if state.session is not None and collection in state.dict:
        state.session.expire(row, [collection])


def _forget_backref(parent: Any, collection: str) -> None:
    """Expire a persistent parent's collection that the ORM's backref appended a written row to:
    the row is in the database, not in the session, so the collection reloads with it instead of
    the session trying to add it at its next flush."""
    state = _state(parent)
    if state.session is not None and collection in state.committed_state:
        state.session.expire(parent, [collection])
