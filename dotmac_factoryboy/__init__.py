"""dotmac-factoryboy: factory_boy for SQLAlchemy 2.x multi-tenant back ends."""

from .builders import ScenarioBuilder, ScenarioContext, TestDataBuilder
from .customizations import Customization, LinkOnly, customize
from .factories import SQLAlchemyFactory, TenantIsolatedFactory, plan_for
from .faking import Faker
from .generators import DataGenerator, DataProvider, DataType, SequenceGenerator
from .linting import LintReport, lint
from .registry import FactoryRegistry, registry
from .relationships import RelationshipDefinition
from .tenancy import allow_cross_tenant, current_tenant_id, tenant_context

__all__ = [
    "Customization",
    "DataGenerator",
    "DataProvider",
    "DataType",
    "FactoryRegistry",
    "Faker",
    "LinkOnly",
    "LintReport",
    "RelationshipDefinition",
    "SQLAlchemyFactory",
    "ScenarioBuilder",
    "ScenarioContext",
    "SequenceGenerator",
    "TenantIsolatedFactory",
    "TestDataBuilder",
    "allow_cross_tenant",
    "current_tenant_id",
    "customize",
    "lint",
    "plan_for",
    "registry",
    "tenant_context",
]
__version__ = "0.1.0"
