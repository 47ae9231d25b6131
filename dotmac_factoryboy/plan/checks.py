"""Validation of a walked plan: every caller value must be legal before anything is built.

Unknown names (with the closest ones), values a model cannot take, keys aimed inside a linked
row, customizations of the tree's pinned tenant, and links of the wrong model, state or session.
"""

from __future__ import annotations

import difflib
import functools
import inspect as pyinspect
from typing import TYPE_CHECKING, Any

from factory import enums
from factory.declarations import SKIP
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Mapper, RelationshipProperty

from ..customizations import format_path
from ..errors import CustomizationError, FieldValueError, LinkOnlyError, UnknownFieldError
from ..factory_boy_adapter import SPLITTER, is_declaration, overrides, shape_of, targets_of
from ..session import find_session
from .nodes import CALLER_SOURCES, PlanNode, refuse_inside_linked

if TYPE_CHECKING:
    from .call import CallPlan


def validate(plan: CallPlan) -> None:
    """Every caller value is legal before anything is built: links, nested keys, fields."""
    check_links(plan)
    for node in plan.nodes():
        _check_nested(plan, node)
        if node.role == "pinned" and any(True for _ in node.explicit()):
            keys = ", ".join(sorted(name for name, _ in node.explicit()))
            raise CustomizationError(
                f"{plan.name}: {keys} at {node.label!r} customize a row that is set to the "
                f"tree's tenant. Fix: customize the tenant place {plan.tenant_label()} "
                "instead."
            )
        for name, value in node.explicit():
            _check_field(plan, node, name, value.value)


def _check_nested(plan: CallPlan, node: PlanNode) -> None:
    """Caller keys aimed inside a place that holds an instance would be dropped: refuse."""
    shape = shape_of(node.factory)
    for name, layers in node.nested.items():
        keys = sorted(f"{name}{SPLITTER}{k}" for s, v in layers if s in CALLER_SOURCES for k in v)
        if not keys:
            continue
        given = node.fields.get(name)
        declared = shape.declarations.get(name)
        if given is not None and given.source in CALLER_SOURCES and targets_of(declared):
            how = "is linked with LinkOnly" if given.source == "link" else "received a value"
            if given.source == "caller" and sa_inspect(given.value, raiseerr=False) is not None:
                how = "received an instance"
            refuse_inside_linked(plan.name, format_path((*node.path, name)), keys, how)
        if node.tenant is not None and name == node.tenant.relationship:
            raise CustomizationError(
                f"{plan.name}: {', '.join(keys)} at {node.label!r} customize a tenant "
                "that is set to the tree's tenant. Fix: customize the tenant place "
                f"{plan.tenant_label()} (customize(TenantModel, ...)) instead."
            )
        if name not in shape.known and not _accepts(node, name):
            _unknown(plan, node, name)


def _check_field(plan: CallPlan, node: PlanNode, key: str, value: Any) -> None:
    shape = shape_of(node.factory)
    attributes = _attributes(node.model)
    if key in shape.known and (attributes is None or key not in attributes):
        return  # a Param, trait, rename, exclude, post-generation name or ``__sequence``
    if not key or key.startswith(SPLITTER) or key.endswith(SPLITTER):
        raise UnknownFieldError(
            f"{node.factory.__name__}: keyword {key!r}{_at(plan, node)} has an empty part "
            f"around {SPLITTER!r}. Fix: name a field ({key.strip('_')!r}) or a field of a "
            f"place ('place{SPLITTER}field')."
        )
    if key in shape.post:
        return  # a post-generation name: factory_boy's to judge
    if not _accepts(node, key):
        _unknown(plan, node, key)
    _check_attribute_value(node, key, value, plan.name + _at(plan, node))


def _unknown(plan: CallPlan, node: PlanNode, name: str) -> None:
    shape = shape_of(node.factory)
    names = shape.known | (_attributes(node.model) or frozenset())
    close = difflib.get_close_matches(name, sorted(names), 3)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownFieldError(
        f"{node.factory.__name__}: unknown field {name!r}{_at(plan, node)}.{hint} Fix: use a "
        f"column or relationship of {node.model.__name__}, or a declaration, Param or trait "
        f"of {node.factory.__name__}."
    )


def _at(plan: CallPlan, node: PlanNode) -> str:
    return f" (at {node.label!r} under {plan.name})" if node.path else ""


def check_links(plan: CallPlan) -> None:
    """Linked rows must be rows of the right model, written, and in the factory's session."""
    for path, link in plan.link_paths:
        where = format_path(path)
        parent = plan.node_at(path[:-1])
        targets = targets_of(shape_of(parent.factory).declarations.get(path[-1]))
        if targets and not isinstance(link.instance, targets[0].factory._meta.model):
            expected = targets[0].factory._meta.model.__name__
            raise LinkOnlyError(
                f"{plan.name}: LinkOnly({type(link.instance).__name__}) at {where!r} where "
                f"a {expected} is built. Fix: link a {expected} instance there."
            )
        if plan.strategy != enums.CREATE_STRATEGY:
            continue
        state = sa_inspect(link.instance, raiseerr=False)
        if state is None:
            raise LinkOnlyError(
                f"{plan.name}: LinkOnly at {where!r} got {link.instance!r}, which is not a "
                "mapped SQLAlchemy instance. Fix: link a row of the model built there."
            )
        if state.deleted or state.was_deleted or not state.has_identity:
            status = "deleted" if state.deleted or state.was_deleted else "not yet in the database"
            raise LinkOnlyError(
                f"{plan.name}: LinkOnly({type(link.instance).__name__}) at {where!r} is "
                f"{status}; create() can only link persistent rows. Fix: add and flush it "
                "first (or create it with its factory), or use build()."
            )
        own = find_session(parent.factory)
        if state.session is not None and own is not None and state.session is not own:
            raise LinkOnlyError(
                f"{plan.name}: LinkOnly({type(link.instance).__name__}) at {where!r} "
                f"belongs to another open session than the one {parent.factory.__name__} "
                "writes through. Fix: link a row of that session (session.get(Model, id) or "
                "session.merge(row)), or bind the same session."
            )


_ATTRIBUTES: dict[Any, frozenset[str] | None] = {}

HOOKS = ("_create", "_build", "_adjust_kwargs")
"""Class methods that see a call's keywords: a factory overriding one may consume any name."""


def takes_name(factory_cls: Any, name: str) -> bool:
    """Whether ``name`` is a field the factory declares or its model takes (not any-name hooks)."""
    attributes = _attributes(factory_cls._meta.model)
    return name in shape_of(factory_cls).known or (attributes is not None and name in attributes)


def _accepts(node: PlanNode, name: str) -> bool:
    """Whether the model (or the factory's own hooks) at ``node`` can take keyword ``name``."""
    names = _attributes(node.model)
    return names is None or name in names or overrides(node.factory, *HOOKS)


def _attributes(model: Any) -> frozenset[str] | None:
    """Names a model's constructor accepts (cached); ``None`` when it takes any name."""
    if model not in _ATTRIBUTES:
        _ATTRIBUTES[model] = _read_attributes(model)
    return _ATTRIBUTES[model]


def _read_attributes(model: Any) -> frozenset[str] | None:
    """Mapped classes: their mapped and plain attributes. Other classes (dataclasses, dict...):
    their constructor's parameters, or any name when it takes ``**kwargs`` or has no signature."""
    plain = {n for n in dir(model) if not n.startswith("_")}
    mapper = sa_inspect(model, raiseerr=False)
    if isinstance(mapper, Mapper):
        return frozenset({*mapper.all_orm_descriptors.keys(), *plain})
    try:
        parameters = pyinspect.signature(model).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    named = (pyinspect.Parameter.POSITIONAL_OR_KEYWORD, pyinspect.Parameter.KEYWORD_ONLY)
    return frozenset({*plain, *(p.name for p in parameters if p.kind in named)})


@functools.cache
def _attribute_kind(model: Any, key: str) -> tuple[str, RelationshipProperty[Any] | None]:
    """Whether ``model.key`` can be set, and its relationship: per model and key, once (a
    static lookup walks the class's MRO, and every call of every test asks again)."""
    static = pyinspect.getattr_static(model, key, None)
    if isinstance(static, property) and static.fset is None:
        return "read-only property", None
    mapper = sa_inspect(model, raiseerr=False)
    if not isinstance(mapper, Mapper):
        return "", None
    descriptor = mapper.all_orm_descriptors.get(key)
    if descriptor is not None and getattr(descriptor, "fset", True) is None:
        return "hybrid without setter", None
    return "", mapper.relationships.get(key)


def _check_attribute_value(node: PlanNode, key: str, value: Any, where: str) -> None:
    """Refuse values the model cannot take: read-only attributes, wrong relationship values."""
    model: Any = node.model
    settable, relation = _attribute_kind(model, key)
    if settable == "read-only property":
        raise FieldValueError(
            f"{where}: {model.__name__}.{key} is a read-only property, so it cannot be set. "
            f"Fix: set the column(s) it is computed from instead of {key!r}."
        )
    if settable == "hybrid without setter":
        raise FieldValueError(
            f"{where}: {model.__name__}.{key} is a hybrid property without a setter. Fix: set "
            "the column(s) it is computed from instead."
        )
    if relation is None or value is None or value is SKIP or is_declaration(value):
        return
    target = relation.mapper.class_
    if relation.uselist:
        items = list(value) if isinstance(value, (list, tuple, set, frozenset)) else None
        if items is not None and all(isinstance(i, target) for i in items):
            return
        expected = f"a list of {target.__name__} instances"
    else:
        if isinstance(value, target):
            return
        expected = f"a {target.__name__} instance (or None)"
    columns = ", ".join(f"{c.key}=" for c in relation.local_columns)
    by_key = f", or {columns}<key> to link a row by its key" if not relation.uselist else ""
    raise FieldValueError(
        f"{where}: field {key!r} of {node.factory.__name__} takes {expected}, got "
        f"{type(value).__name__} {value!r}. Fix: pass {expected}{by_key}."
    )
