"""The call plan: a side-effect-free walk of the whole declaration tree of one factory call
(``call``), its data (``nodes``), its validation (``checks``) and its tenant places
(``tenant_places``)."""

from ..factory_boy_adapter import is_declaration, targets_of
from .call import CallPlan, plan_call, running_hooks
from .checks import takes_name
from .nodes import FieldValue, Link, Place, PlanNode

__all__ = [
    "CallPlan",
    "FieldValue",
    "Link",
    "Place",
    "PlanNode",
    "is_declaration",
    "plan_call",
    "running_hooks",
    "takes_name",
    "targets_of",
]
