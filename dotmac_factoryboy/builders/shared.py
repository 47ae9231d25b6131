"""What every builder shares: one tenant per call, all-or-nothing runs, links, references."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

from sqlalchemy.orm import Session

from ..customizations import LinkOnly
from ..errors import ConfigurationError
from ..registry import FactoryRegistry, TrackingScope
from ..relationships import RelationshipDefinition, relationship_for_column
from ..scoping import tenant_id_of
from ..session import actual, bound_session, row_session
from ..tenancy import current_tenant_id, tenant_context

REFERENCE = re.compile(r"\$\{([A-Za-z_]\w*)((?:\.\w+)*)\}")
"""``${step}`` or ``${step.attr.attr}`` inside a scenario step's attributes."""


class SharedTenant:
    """Keeps one builder call in one tenant: the first tenant seen becomes the context of the rest
    (an already active ``tenant_context`` wins)."""

    def __init__(self, registry: FactoryRegistry) -> None:
        self.registry = registry
        self._stack = ExitStack()
        self._fixed = current_tenant_id() is not None

    def __enter__(self) -> SharedTenant:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def adopt(self, instance: Any) -> None:
        """Make ``instance``'s tenant the default for what follows, if none is set yet."""
        if self._fixed:
            return
        tenant_id = tenant_id_of(instance)
        if tenant_id is not None:
            self._stack.enter_context(tenant_context(tenant_id))
            self._fixed = True


@contextmanager
def atomic(registry: FactoryRegistry) -> Iterator[TrackingScope]:
    """Track a builder call in its own scope; on failure undo everything it created.

    With a bound session the call runs in a SAVEPOINT that is rolled back, and rows written
    through any other session (a factory with its own ``Meta.sqlalchemy_session``) are deleted;
    without one, every row the scope tracked is deleted by the registry's cleanup.
    """
    session = bound_session(registry)
    with registry.scope() as scope:
        if session is None:
            try:
                yield scope
            except BaseException:
                registry.cleanup_all()
                raise
            return
        try:
            with session.begin_nested():
                yield scope
        except BaseException:
            elsewhere = [r.instance for r in scope.rows if actual(r.session) is not session]
            try:
                if elsewhere:
                    registry.cleanup_instances(elsewhere)
            finally:
                registry.forget(scope)
            raise


def _link(
    registry: FactoryRegistry,
    definition: RelationshipDefinition,
    parent: Any,
    create: bool,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Make one target of ``definition`` that points at ``parent``."""
    target_factory = registry.get_factory(definition.target_factory)
    make = target_factory.create if create else target_factory.build
    if definition.relationship_type == "many_to_many":
        target = make(**(attributes or {}))
        getattr(parent, definition.foreign_key).append(target)
        if create:
            _session_of(registry, parent).flush()
        return target
    key = relationship_for_column(target_factory._meta.model, definition.foreign_key)
    link = {key: LinkOnly(parent)} if key else {definition.foreign_key: parent.id}
    return make(**{**(attributes or {}), **link})


def _session_of(registry: FactoryRegistry, instance: Any) -> Session:
    session = row_session(instance, registry)
    if session is None:
        raise ConfigurationError(
            f"No session holds {instance!r}. Fix: bind one with registry.bound(session)."
        )
    return session


def _resolve(value: Any, entities: Mapping[str, Any]) -> Any:
    """Replace ``${step}`` / ``${step.attr}`` references with entities or their attributes."""
    if isinstance(value, str):
        whole = REFERENCE.fullmatch(value)
        if whole:
            return _lookup(entities, whole.group(1), whole.group(2))
        return REFERENCE.sub(lambda m: str(_lookup(entities, m.group(1), m.group(2))), value)
    if isinstance(value, Mapping):
        return {k: _resolve(v, entities) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_resolve(v, entities) for v in value)
    return value


def _lookup(entities: Mapping[str, Any], name: str, attributes: str) -> Any:
    value = entities[name]
    for attribute in filter(None, attributes.split(".")):
        value = getattr(value, attribute)
    return value
