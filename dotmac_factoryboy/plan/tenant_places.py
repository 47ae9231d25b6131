"""The plan's tenant places: which places are tenant-scoped, where the tree's new tenant is
built, which places are pinned to the tree's tenant, and the keywords that inject it.

It runs after every walk of the plan, so routing (``customize(Tenant, ...)``) sees the tenant
place like any other; deciding which tenant the tree gets is ``tenancy``'s, over the finished plan.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from factory.declarations import SKIP
from sqlalchemy import inspect as sa_inspect

from ..factory_boy_adapter import targets_of
from ..registry import registry as default_registry
from ..scoping import TenantRef, TenantSpec, injected, spec_for, tenant_ref
from ..session import find_session
from .nodes import PlanNode

if TYPE_CHECKING:
    from .call import CallPlan


def place_tenant(plan: CallPlan, root: PlanNode) -> None:
    """Mark each node's tenant spec, pin tenant places to the tree's tenant, add the tenant place.

    The tenant place sits at the tenant relationship (else the tenant column) of the shallowest
    tenant-scoped place; every other place that would build a tenant for a scoped row is pinned
    to the tree's tenant.
    """
    queue, scoped = [root], []
    while queue:
        node = queue.pop(0)
        node.tenant = spec_for(node.factory)
        if node.tenant is not None:
            scoped.append(node)
        queue.extend(node.children.values())
    if not scoped:
        return
    for node in scoped:
        relation = node.tenant.relationship if node.tenant is not None else None
        child = node.children.get(relation or "")
        if child is not None:
            _pin(child)
    first = scoped[0]
    spec = first.tenant
    assert spec is not None
    # At the relationship when the model has one, else at the tenant column itself (a bare
    # ForeignKey): either way the new tenant's key lands in that column.
    name = spec.relationship or (spec.field if spec.tenant_model is not None else None)
    if name is None:
        return
    if name in first.children:
        first.children[name].role = "tenant"
        return
    given = first.fields.get(name)
    if given is not None and given.source != "default":
        return
    maker = _tenant_factory(first.factory, spec)
    if maker is not None:
        plan.add_place(first, name, maker, "tenant")


def _pin(node: PlanNode) -> None:
    node.role = "pinned"
    for child in node.children.values():
        _pin(child)


def _tenant_factory(factory_cls: Any, spec: TenantSpec) -> Any:
    if spec.tenant_factory is not None:
        return spec.tenant_factory
    if spec.tenant_model is None:
        return None
    chosen = getattr(factory_cls._meta, "registry", None) or default_registry
    try:
        return chosen.factory_for(spec.tenant_model)
    except LookupError:
        return None


def tenant_keywords(node: PlanNode, tenant: TenantRef) -> dict[str, Any]:
    """What the plan adds so the row at ``node`` belongs to ``tenant`` (nothing if it is set)."""
    spec = node.tenant
    assert spec is not None
    field = node.fields.get(spec.field)
    if field is not None and not (field.source == "default" and field.value is None):
        return {}
    relation = spec.relationship
    child = node.children.get(relation or "")
    if relation is not None and child is None:
        given = node.fields.get(relation)
        free = given is None or given.source == "default"
        if not free or (
            given is not None and given.value is not None and not targets_of(given.value)
        ):
            return _column_of(spec, given.value if given is not None else None)
    out = injected(spec, tenant)
    if spec.field in out and relation is not None and relation in node.fields:
        # The declared place would build a tenant of its own: it gets the tree's tenant row, so
        # declarations read ``o.org.slug`` as well as ``o.org_slug``; a row of another session
        # cannot be assigned, so the place is skipped then (the column alone says it).
        out[relation] = tenant.instance if _assignable(tenant.instance, node) else SKIP
    return out


def _column_of(spec: TenantSpec, row: Any) -> dict[str, Any]:
    """The tenant column's value for a row given at the tenant relationship, when its key is
    known: declarations then read ``o.<column>`` as well as ``o.<relationship>``."""
    if not hasattr(sa_inspect(row, raiseerr=False), "mapper"):
        return {}  # None, SKIP, a declaration: nothing to read a key from
    key = tenant_ref(row).id
    return {spec.field: spec.coerce(key)} if key is not None else {}


def _assignable(instance: Any, node: PlanNode) -> bool:
    if instance is None:
        return False
    owner = sa_inspect(instance).session
    return owner is None or owner is find_session(node.factory)
