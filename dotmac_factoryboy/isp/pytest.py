"""The ISP reference domain's pytest fixtures: its factories' fixtures, the DotMac scenarios
(``basic_tenant_setup`` ...), ``billing_factory``, its schema and its Faker provider.

Enable them in a ``conftest.py``::

    pytest_plugins = ["dotmac_factoryboy.isp.pytest"]
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from ..errors import FactoryNotFoundError
from ..pytest_plugin import add_metadata
from ..registry import FactoryRegistry, registry
from . import factories  # registers the ISP factories (and adds ISPProvider to Faker)


def pytest_configure(config: pytest.Config) -> None:
    """The test database gets the ISP schema."""
    add_metadata(config, "dotmac_factoryboy.isp.models:Base")


# -- DotMac scenario fixtures -------------------------------------------------------------------


@pytest.fixture
def basic_tenant_setup(factory_binding: Session) -> dict[str, Any]:
    """``tenant``, ``tenant_id`` and ``admin_user`` (an admin User of that tenant)."""
    tenant = factories.TenantFactory.create()
    admin = factories.UserFactory.create(tenant=tenant, admin=True)
    return {"tenant": tenant, "tenant_id": tenant.id, "admin_user": admin}


@pytest.fixture
def customer_with_service(basic_tenant_setup: dict[str, Any]) -> dict[str, Any]:
    """``basic_tenant_setup`` plus ``customer`` and a ``service`` of that customer."""
    customer = factories.CustomerFactory.create(tenant=basic_tenant_setup["tenant"])
    service = factories.ServiceFactory.create(customer=customer)
    return {**basic_tenant_setup, "customer": customer, "service": service}


@pytest.fixture
def complete_customer_scenario(
    customer_with_service: dict[str, Any], factory_binding: Session
) -> dict[str, Any]:
    """Plus ``billing_account``, ``invoice``, ``router`` and ``devices`` (linked to the service)."""
    customer, service = customer_with_service["customer"], customer_with_service["service"]
    account = factories.BillingAccountFactory.create(customer=customer)
    invoice = factories.InvoiceFactory.create(billing_account=account, amount=service.monthly_price)
    router = factories.DeviceFactory.create(customer=customer, router=True)
    service.devices.append(router)
    factory_binding.flush()
    return {
        **customer_with_service,
        "billing_account": account,
        "invoice": invoice,
        "router": router,
        "devices": [router],
    }


@pytest.fixture
def support_ticket_scenario(customer_with_service: dict[str, Any]) -> dict[str, Any]:
    """Plus a ``technician`` and a ``ticket`` of the customer assigned to them."""
    technician = factories.UserFactory.create(
        tenant=customer_with_service["tenant"], technician=True
    )
    ticket = factories.TicketFactory.create(
        customer=customer_with_service["customer"], assigned_to=technician
    )
    return {**customer_with_service, "technician": technician, "ticket": ticket}


@pytest.fixture
def multi_tenant_setup(factory_binding: Session) -> dict[str, Any]:
    """Two tenants with one customer each."""
    tenant_a, tenant_b = factories.TenantFactory.create(), factories.TenantFactory.create()
    return {
        "tenant_a": tenant_a,
        "tenant_b": tenant_b,
        "customer_a": factories.CustomerFactory.create(tenant=tenant_a),
        "customer_b": factories.CustomerFactory.create(tenant=tenant_b),
    }


class BillingFactory:
    """DotMac's ``billing_factory``: ``create(entity_type=..., **kwargs)`` picks the factory."""

    ENTITY_TYPES = {
        "billing_account": "billing_account_factory",
        "invoice": "invoice_factory",
        "payment": "payment_factory",
    }

    def __init__(self, factories: FactoryRegistry) -> None:
        self.registry = factories

    def _factory(self, entity_type: str) -> Any:
        if entity_type not in self.ENTITY_TYPES:
            raise FactoryNotFoundError(
                f"billing_factory: unknown entity_type {entity_type!r}. Fix: use one of "
                f"{', '.join(self.ENTITY_TYPES)}."
            )
        return self.registry.get_factory(self.ENTITY_TYPES[entity_type])

    def create(self, entity_type: str, **kwargs: Any) -> Any:
        """Create a billing entity of ``entity_type``."""
        return self._factory(entity_type).create(**kwargs)

    def build(self, entity_type: str, **kwargs: Any) -> Any:
        """Build a billing entity of ``entity_type`` without writing it."""
        return self._factory(entity_type).build(**kwargs)


@pytest.fixture
def billing_factory(factory_binding: Session) -> BillingFactory:
    """Dispatches ``create(entity_type="billing_account"|"invoice"|"payment", ...)``."""
    return BillingFactory(registry)
