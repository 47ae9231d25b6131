"""The pre-built ISP scenarios (DotMac's): recipes callable as ``ScenarioBuilder`` methods.

``TestDataBuilder().scenario("x").customer_onboarding_scenario(...)`` works once
``dotmac_factoryboy.isp`` is imported.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..builders import ScenarioBuilder, register_recipe
from . import factories  # noqa: F401  (registers the ISP factories the recipes use)


def customer_onboarding_scenario(
    self: ScenarioBuilder, tenant_id: Any = None, service_type: str = "internet"
) -> ScenarioBuilder:
    """Tenant (created unless given), customer, service, billing account, first invoice and
    a router linked to the service."""
    self.add_step("tenant", "tenant_factory", _tenant_attributes(tenant_id))
    if tenant_id is not None:
        self.steps["tenant"].existing = lambda: _find_tenant(self, tenant_id)
    self.add_step("customer", "customer_factory", {"tenant": "${tenant}"})
    self.add_step("router", "device_factory", {"customer": "${customer}"}, traits=("router",))
    self.add_step(
        "service",
        "service_factory",
        {"customer": "${customer}", "service_type": service_type, "devices": ["${router}"]},
        traits=_service_traits(service_type),
    )
    self.add_step("billing_account", "billing_account_factory", {"customer": "${customer}"})
    self.add_step(
        "invoice",
        "invoice_factory",
        {"billing_account": "${billing_account}", "amount": "${service.monthly_price}"},
    )
    return self


def service_provisioning_scenario(
    self: ScenarioBuilder, customer_id: Any, service_type: str = "fiber_internet"
) -> ScenarioBuilder:
    """For an existing customer: a service, ONT and router devices, an activation ticket."""
    self.add_step("customer", "customer_factory")
    self.steps["customer"].existing = lambda: self.find("customer_factory", customer_id)
    self.add_step("ont", "device_factory", {"customer": "${customer}"}, traits=("ont",))
    self.add_step("router", "device_factory", {"customer": "${customer}"}, traits=("router",))
    self.add_step(
        "service",
        "service_factory",
        {
            "customer": "${customer}",
            "service_type": service_type,
            "devices": ["${ont}", "${router}"],
        },
        traits=_service_traits(service_type),
    )
    self.add_step(
        "activation_ticket",
        "ticket_factory",
        {
            "customer": "${customer}",
            "subject": "Activate ${service.service_id}",
            "description": "Provision ${service.plan} for ${customer.name}.",
        },
    )
    return self


def support_ticket_scenario(self: ScenarioBuilder) -> ScenarioBuilder:
    """A customer, a technician, a ticket assigned to them and a child ticket."""
    self.add_step("customer", "customer_factory")
    self.add_step("technician", "user_factory", traits=("technician",))
    ticket = {"customer": "${customer}", "assigned_to": "${technician}"}
    self.add_step("ticket", "ticket_factory", ticket)
    self.add_step("child_ticket", "ticket_factory", {**ticket, "parent": "${ticket}"})
    return self


def _find_tenant(self: ScenarioBuilder, tenant_id: Any) -> Any:
    if isinstance(tenant_id, int) or str(tenant_id).isdigit():
        return self.find("tenant_factory", int(tenant_id))
    model = self.registry.get_factory("tenant_factory")._meta.model
    query = select(model).where(model.subdomain == str(tenant_id))
    return self.session().execute(query).scalars().first()


def _tenant_attributes(tenant_id: Any) -> dict[str, Any]:
    """A tenant given by a non-numeric id (``"acme-isp"``) is looked up or made by subdomain."""
    if tenant_id is None or isinstance(tenant_id, int) or str(tenant_id).isdigit():
        return {}
    return {"subdomain": str(tenant_id), "name": str(tenant_id).replace("-", " ").title()}


def _service_traits(service_type: str) -> tuple[str, ...]:
    traits = {"fiber_internet": "fiber", "phone": "phone", "tv": "tv"}
    return (traits[service_type],) if service_type in traits else ()


for _recipe in (
    customer_onboarding_scenario,
    service_provisioning_scenario,
    support_ticket_scenario,
):
    register_recipe(_recipe.__name__, _recipe)
