"""Builders: relationship definitions, entity/relationship/scenario builders, rollback on failure."""

from __future__ import annotations

import os
from decimal import Decimal

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from dotmac_factoryboy import (
    DataType,
    FactoryRegistry,
    RelationshipDefinition,
    ScenarioBuilder,
    TestDataBuilder,
    registry,
)
from dotmac_factoryboy.errors import RelationshipError, ScenarioError
from dotmac_factoryboy.generators import DataGenerator
from dotmac_factoryboy.isp import factories as f
from dotmac_factoryboy.isp.models import (
    BillingAccount,
    Customer,
    Device,
    Invoice,
    Service,
    Tenant,
    Ticket,
    User,
    service_devices,
)

from .conftest import METADATAS, count, table_counts
from .saas_factories import OrganizationFactory, saas_registry
from .saas_schema import Organization

ISP_TABLES = [t for t in METADATAS[1].sorted_tables]


def all_rows(session: Session) -> int:
    return sum(
        session.execute(select(func.count()).select_from(t)).scalar_one() for t in ISP_TABLES
    )


def tenant_ids(session: Session, *models: type) -> set[int]:
    return {
        tid
        for model in models
        for tid in session.execute(select(model.tenant_id)).scalars()  # type: ignore[attr-defined]
    }


@pytest.fixture
def customer_services() -> RelationshipDefinition:
    if "customer_services" not in registry.relationships:
        registry.register_relationship(
            RelationshipDefinition(
                name="customer_services",
                source_factory="customer_factory",
                target_factory="service_factory",
                relationship_type="one_to_many",
                foreign_key="customer_id",
            )
        )
    return registry.relationships["customer_services"]


# -- relationship definitions -----------------------------------------------------------------


def test_register_relationship_validates_at_registration() -> None:
    private = FactoryRegistry()
    private.register_factory(f.CustomerFactory)
    private.register_factory(f.ServiceFactory)
    good = RelationshipDefinition(
        "services", "customer_factory", "service_factory", "one_to_many", "customer_id"
    )
    private.register_relationship(good)
    assert private.relationships == {"services": good}
    with pytest.raises(RelationshipError, match="already registered"):
        private.register_relationship(good)
    with pytest.raises(RelationshipError, match="'device_factory' is not registered"):
        private.register_relationship(
            RelationshipDefinition("x", "customer_factory", "device_factory", "one_to_many", "id")
        )
    with pytest.raises(
        RelationshipError, match="'owner_id' is not a column or relationship of Service"
    ):
        private.register_relationship(
            RelationshipDefinition(
                "y", "customer_factory", "service_factory", "one_to_many", "owner_id"
            )
        )
    with pytest.raises(RelationshipError, match="relationship_type"):
        private.register_relationship(
            RelationshipDefinition(
                "z", "customer_factory", "service_factory", "many", "customer_id"
            )  # type: ignore[arg-type]
        )


# -- entity builder -----------------------------------------------------------------------------


def test_entity_builder_creates_a_real_row(
    session: Session, customer_services: RelationshipDefinition
) -> None:
    builder = TestDataBuilder(registry, DataGenerator(seed=5))
    customer = (
        builder.entity("customer_factory")
        .with_attribute("name", "Alice")
        .with_generated_attribute("email", DataType.EMAIL)
        .with_trait("business")
        .with_relationship("customer_services")
        .build()
    )
    session.expire_all()
    row = session.get(Customer, customer.id)
    assert row is not None and (row.name, row.type) == ("Alice", "business")
    assert "@" in row.email
    assert [s.customer_id for s in row.services] == [customer.id]
    assert count(session, Customer) == 1 and count(session, Tenant) == 1
    assert tenant_ids(session, Customer, Service) == {customer.tenant_id}


def test_entity_build_only_writes_nothing(session: Session) -> None:
    customer = TestDataBuilder().entity("customer_factory").with_trait("suspended").build_only()
    assert customer.status == "suspended" and customer.id is None
    assert all_rows(session) == 0


def test_with_relationship_must_start_at_the_entity(
    customer_services: RelationshipDefinition,
) -> None:
    with pytest.raises(RelationshipError, match="starts at 'customer_factory'"):
        TestDataBuilder().entity("service_factory").with_relationship("customer_services")


# -- relationship builder -----------------------------------------------------------------------


def test_one_to_many_dotmac_example(session: Session) -> None:
    builder = TestDataBuilder(registry, DataGenerator())
    result = (
        builder.relationship()
        .one_to_many(
            parent_factory="customer_factory",
            child_factory="service_factory",
            name="customer_services",
            foreign_key="customer_id",
            children_count=3,
        )
        .build()
    )
    customer = result["parent_customer_services"]
    services = [result[f"child_customer_services_{i}"] for i in range(3)]
    assert len(result) == 4
    session.expire_all()
    rows = session.execute(select(Service.customer_id)).scalars().all()
    assert rows == [customer.id] * 3 and len({s.id for s in services}) == 3
    assert count(session, Customer) == 1 and count(session, Tenant) == 1


def test_one_to_one_many_to_many_and_steps_chain_in_one_tenant(session: Session) -> None:
    result = (
        TestDataBuilder()
        .relationship()
        .one_to_one(
            "customer_factory", "billing_account_factory", "billing", foreign_key="customer_id"
        )
        .many_to_many("service_factory", "device_factory", "wiring", left_count=2, right_count=3)
        .add_step(
            "ticket", "ticket_factory", attributes={"customer": "${customer}"}, traits=["urgent"]
        )
        .add_step("customer", "customer_factory")
        .build()
    )
    account = result["target_billing"]
    assert account.customer is result["source_billing"]
    links = session.execute(select(func.count()).select_from(service_devices)).scalar_one()
    assert links == 6
    for index in range(2):
        assert len(result[f"left_wiring_{index}"].devices) == 3
    assert result["ticket"].customer is result["customer"] and result["ticket"].priority == "urgent"
    assert count(session, Tenant) == 1
    assert len(tenant_ids(session, Customer, BillingAccount, Service, Device, Ticket)) == 1


def test_relationship_builder_rejects_bad_keys_before_writing(session: Session) -> None:
    builder = TestDataBuilder().relationship()
    with pytest.raises(RelationshipError, match="'owner' is not a column"):
        builder.one_to_many("customer_factory", "service_factory", "bad", foreign_key="owner")
    with pytest.raises(RelationshipError, match="no many-to-many"):
        builder.many_to_many("customer_factory", "device_factory", "bad")
    assert all_rows(session) == 0


# -- scenarios ----------------------------------------------------------------------------------


def test_steps_run_in_dependency_order_with_references(session: Session) -> None:
    context = (
        TestDataBuilder()
        .scenario("ordered")
        .describe("steps declared out of order")
        .add_step(
            "invoice",
            "invoice_factory",
            {"billing_account": "${account}", "amount": "${service.monthly_price}"},
        )
        .add_step(
            "account",
            "billing_account_factory",
            {"customer": "${customer}"},
            dependencies=["service"],
        )
        .add_step(
            "service",
            "service_factory",
            {"customer": "${customer}", "plan": "Plan for ${customer.name}"},
        )
        .add_step("customer", "customer_factory", traits=["enterprise"])
        .build()
    )
    e = context.entities
    assert (context.name, context.description, context.skipped) == (
        "ordered",
        "steps declared out of order",
        [],
    )
    assert list(e) == ["customer", "service", "account", "invoice"]
    assert e["invoice"].amount == e["service"].monthly_price == Decimal("49.99")
    assert e["service"].plan == f"Plan for {e['customer'].name}"
    assert count(session, Customer) == 1 and count(session, Tenant) == 1


def test_cycles_and_unknown_steps_are_errors_before_writing(session: Session) -> None:
    cyclic = (
        ScenarioBuilder("loop", registry)
        .add_step("a", "customer_factory", dependencies=["b"])
        .add_step("b", "customer_factory", {"x": "${a}"})
    )
    with pytest.raises(ScenarioError, match=r"cycle: (a -> b -> a|b -> a -> b)"):
        cyclic.build()
    with pytest.raises(ScenarioError, match="unknown step"):
        ScenarioBuilder("missing", registry).add_step(
            "a", "customer_factory", {"x": "${nope.id}"}
        ).build()
    with pytest.raises(ScenarioError, match="unknown factory 'nope_factory'"):
        ScenarioBuilder("factory", registry).add_step("a", "nope_factory").build()
    assert all_rows(session) == 0


def test_conditions_skip_steps_and_their_dependents(session: Session) -> None:
    context = (
        ScenarioBuilder("conditional", registry)
        .add_step(
            "premium",
            "customer_factory",
            condition=lambda: False,
            attributes={"type": "enterprise"},
        )
        .add_step("premium_service", "service_factory", {"customer": "${premium}"})
        .add_step("regular", "customer_factory")
        .build()
    )
    assert context.skipped == ["premium", "premium_service"] and list(context.entities) == [
        "regular"
    ]
    assert count(session, Customer) == 1 and count(session, Service) == 0


def test_a_failed_step_rolls_back_everything(session: Session) -> None:
    f.TenantFactory.create(name="kept")
    before = all_rows(session)
    scenario = (
        ScenarioBuilder("broken", registry)
        .add_step("customer", "customer_factory")
        .add_step("service", "service_factory", {"customer": "${customer}"})
        .add_step("invoice", "invoice_factory", {"amount": "not a number"})
    )
    with pytest.raises(ScenarioError, match="step 'invoice'") as info:
        scenario.build()
    assert info.value.__cause__ is not None
    assert all_rows(session) == before
    assert [t.name for t in session.execute(select(Tenant)).scalars()] == ["kept"]
    assert len(registry.instances) == 1  # the rolled-back rows are no longer tracked


def test_a_failed_scenario_undoes_a_step_written_through_its_own_session(
    session: Session, engine: Engine
) -> None:
    own = Session(engine)

    class OwnSessionOrganizationFactory(OrganizationFactory):
        class Meta:
            sqlalchemy_session = own
            sqlalchemy_session_persistence = "commit"
            register = False

    saas_registry.register_factory(OwnSessionOrganizationFactory, "own_session_org_factory")
    try:
        before = table_counts(session)
        scenario = (
            ScenarioBuilder("broken", saas_registry)
            .add_step("org", "own_session_org_factory", {"name": "committed elsewhere"})
            .add_step("project", "project_factory", {"org": "${org}", "name": None})
        )
        with saas_registry.bound(session), pytest.raises(ScenarioError, match="step 'project'"):
            scenario.build()
        session.rollback()
        assert table_counts(session) == before
        assert own.execute(select(Organization)).scalars().all() == []
    finally:
        own.close()


def test_context_cleanup_deletes_what_the_scenario_made(session: Session) -> None:
    f.TenantFactory.create(name="kept")
    context = TestDataBuilder().scenario("support").support_ticket_scenario().build()
    assert all_rows(session) > 1
    context.cleanup()
    assert all_rows(session) == 1


def test_customer_onboarding_dotmac_example(session: Session) -> None:
    builder = TestDataBuilder(registry, DataGenerator())
    context = (
        builder.scenario("customer_onboarding")
        .describe("Complete customer onboarding workflow")
        .customer_onboarding_scenario(tenant_id="acme-isp", service_type="fiber_internet")
        .build()
    )
    customer = context.entities["customer"]
    service = context.entities["service"]
    billing_account = context.entities["billing_account"]
    tenant = context.entities["tenant"]
    assert tenant.subdomain == "acme-isp"
    assert service.customer is customer and service.service_type == "fiber_internet"
    assert service.bandwidth_mbps >= 500 and billing_account.customer is customer
    assert context.entities["invoice"].billing_account is billing_account
    assert [d.device_type for d in service.devices] == ["router"]
    assert count(session, Tenant) == 1 and count(session, Invoice) == 1
    assert tenant_ids(session, Customer, Service, BillingAccount, Invoice, Device) == {tenant.id}
    again = builder.scenario("second").customer_onboarding_scenario(tenant_id="acme-isp").build()
    assert again.entities["tenant"] is tenant and count(session, Tenant) == 1
    by_id = builder.scenario("third").customer_onboarding_scenario(tenant_id=tenant.id).build()
    assert by_id.entities["customer"].tenant_id == tenant.id


def test_service_provisioning_for_an_existing_customer(session: Session) -> None:
    customer = f.CustomerFactory.create()
    context = (
        TestDataBuilder()
        .scenario("provisioning")
        .service_provisioning_scenario(customer_id=customer.id)
        .build()
    )
    e = context.entities
    assert e["customer"] is customer and e["service"].customer is customer
    assert sorted(d.device_type for d in e["service"].devices) == ["ont", "router"]
    assert e["activation_ticket"].subject == f"Activate {e['service'].service_id}"
    assert count(session, Customer) == 1 and count(session, Tenant) == 1
    assert customer not in context.created


def test_support_ticket_scenario(session: Session) -> None:
    e = TestDataBuilder().scenario("support").support_ticket_scenario().build().entities
    assert e["technician"].role == "technician" and e["ticket"].assigned_to is e["technician"]
    assert e["child_ticket"].parent is e["ticket"]
    assert count(session, Tenant) == 1 and count(session, User) == 1
    assert tenant_ids(session, Customer, User, Ticket) == {e["customer"].tenant_id}


def test_dotmac_conditional_example(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PREMIUM", "true")
    scenario = (
        ScenarioBuilder("conditional_test", registry)
        .add_step(
            name="premium_customer",
            factory_name="customer_factory",
            condition=lambda: os.getenv("TEST_PREMIUM") == "true",
            attributes={"type": "enterprise"},
        )
        .build()
    )
    assert scenario.entities["premium_customer"].type == "enterprise"


def test_dotmac_entity_builder_example(session: Session) -> None:
    generator = DataGenerator()
    builder = TestDataBuilder(registry, generator)

    customer = (
        builder.entity("customer_factory")
        .with_attribute("name", "Alice Smith")
        .with_attribute("type", "business")
        .with_generated_attribute("email", DataType.EMAIL)
        .with_generated_attribute("phone", DataType.PHONE)
        .build()
    )

    session.expire_all()
    row = session.get(Customer, customer.id)
    assert row is not None and (row.name, row.type) == ("Alice Smith", "business")
    assert "@" in row.email and row.phone
