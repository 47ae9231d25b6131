"""dotmac-factoryboy: factory_boy for SQLAlchemy 2.x multi-tenant back ends."""

from .customizations import Customization, LinkOnly, customize
from .factories import SQLAlchemyFactory
from .registry import FactoryRegistry, registry
from .tenancy import TenantIsolatedFactory, allow_cross_tenant, current_tenant_id, tenant_context

__all__ = [
    "Customization",
    "FactoryRegistry",
    "LinkOnly",
    "SQLAlchemyFactory",
    "TenantIsolatedFactory",
    "allow_cross_tenant",
    "current_tenant_id",
    "customize",
    "registry",
    "tenant_context",
]
__version__ = "0.1.0"
