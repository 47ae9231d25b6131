"""Explicit priority: caller > traits in call order > defaults; customize() and LinkOnly."""

from __future__ import annotations

from decimal import Decimal

import factory
import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from dotmac_factoryboy import LinkOnly, customize
from dotmac_factoryboy.errors import CustomizationError, LinkOnlyError
from dotmac_factoryboy.isp.factories import (
    AddressFactory,
    BillingAccountFactory,
    CustomerFactory,
    InvoiceFactory,
    PaymentFactory,
    ServiceFactory,
    TenantFactory,
)
from dotmac_factoryboy.isp.models import Address, BillingAccount, Customer, Invoice, Payment, Tenant

from .conftest import count


class StatementLog:
    """Every SQL statement the session's engine runs while active."""

    def __init__(self, session: Session) -> None:
        self.engine = session.get_bind()
        self.statements: list[str] = []

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self.statements

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        self.statements.append(statement.split()[0].upper())


# -- traits in call order ---------------------------------------------------------------------


def test_first_enabled_trait_wins_and_order_of_keywords_decides() -> None:
    assert CustomerFactory.build(business=True, suspended=True, status="x").status == "x"
    a = ServiceFactory.build(fiber=True, phone=True)
    b = ServiceFactory.build(phone=True, fiber=True)
    assert (a.service_type, a.bandwidth_mbps) == ("fiber_internet", 1000)
    assert (b.service_type, b.bandwidth_mbps) == ("phone", 0)


def test_trait_pulling_another_ranks_its_own_fields_first() -> None:
    enterprise = CustomerFactory.build(enterprise=True)
    assert enterprise.type == "enterprise"  # its own field beats the business trait it enables
    assert enterprise.name != "" and not enterprise.name.startswith("CUST")


def test_fields_nobody_overrides_keep_defaults_and_falsy_values_override() -> None:
    service = ServiceFactory.build(fiber=True, bandwidth_mbps=0, ip_address=None, plan="")
    assert (service.bandwidth_mbps, service.ip_address, service.plan) == (0, None, "")
    assert service.status == "active" and service.service_type == "fiber_internet"


def test_same_rules_inside_a_subfactory() -> None:
    one = ServiceFactory.build(customer__suspended=True, customer__enterprise=True)
    two = ServiceFactory.build(customer__type="residential", customer__enterprise=True)
    assert (one.customer.status, one.customer.type) == ("suspended", "enterprise")
    assert two.customer.type == "residential"


def test_declaration_order_of_traits_no_longer_matters() -> None:
    # factory_boy alone: `fiber` is declared before `phone`, so phone would win whatever the order
    assert ServiceFactory.build(fiber=True, phone=True).service_type == "fiber_internet"


# -- customize() ------------------------------------------------------------------------------


def test_customize_routes_three_levels_down(session: Session) -> None:
    invoice = InvoiceFactory.create(customize(Customer, name="Acme"), amount=Decimal("10"))
    session.expire_all()
    row = session.execute(select(Invoice).where(Invoice.id == invoice.id)).scalar_one()
    assert row.billing_account.customer.name == "Acme" and row.amount == Decimal("10.00")


def test_customize_at_the_root_and_with_traits() -> None:
    customer = CustomerFactory.build(customize(Customer, name="Root Co", business=True))
    assert (customer.name, customer.type) == ("Root Co", "business")


def test_ambiguous_type_lists_candidates_and_path_picks_one() -> None:
    with pytest.raises(CustomizationError) as info:
        CustomerFactory.build(customize(Address, city="Oslo"), with_billing_address=True)
    assert "billing_address" in str(info.value) and "service_address" in str(info.value)
    assert "CustomerFactory" in str(info.value) and "path=" in str(info.value)
    customer = CustomerFactory.build(
        customize(Address, path="billing_address", city="Oslo"), with_billing_address=True
    )
    assert customer.billing_address.city == "Oslo" and customer.service_address.city != "Oslo"
    deep = InvoiceFactory.build(
        customize(Address, path="billing_account.customer.service_address", city="Bergen")
    )
    assert deep.billing_account.customer.service_address.city == "Bergen"


def test_customize_with_no_place_is_an_error(session: Session) -> None:
    with pytest.raises(CustomizationError, match="matches no place") as info:
        ServiceFactory.create(customize(Invoice, amount=Decimal("1")))
    assert "ServiceFactory" in str(info.value) and "Invoice" in str(info.value)
    assert count(session, Tenant) == 0


def test_two_customizations_for_one_place_or_a_clash_with_a_keyword(session: Session) -> None:
    with pytest.raises(CustomizationError, match="two customizations"):
        InvoiceFactory.create(customize(Customer, name="A"), customize(Customer, email="a@b.c"))
    with pytest.raises(CustomizationError, match="name"):
        InvoiceFactory.create(customize(Customer, name="A"), billing_account__customer__name="B")
    assert count(session, Tenant) == 0 and count(session, Customer) == 0


def test_a_customization_list_is_reusable_and_gives_the_same_result(session: Session) -> None:
    shared = [
        customize(Customer, name="Same", type="business"),
        customize(BillingAccount, currency="EUR"),
    ]
    first = InvoiceFactory.create(*shared)
    second = InvoiceFactory.create(*shared)
    for invoice in (first, second):
        account = invoice.billing_account
        assert (account.customer.name, account.customer.type, account.currency) == (
            "Same",
            "business",
            "EUR",
        )
    assert dict(shared[0].fields) == {"name": "Same", "type": "business"}


def test_customize_in_batches_and_stub() -> None:
    batch = CustomerFactory.build_batch(2, customize(Address, path="service_address", city="Rome"))
    assert [c.service_address.city for c in batch] == ["Rome", "Rome"]
    assert (
        InvoiceFactory.stub(customize(Customer, name="Stubbed")).billing_account.customer.name
        == "Stubbed"
    )


# -- LinkOnly ---------------------------------------------------------------------------------


def test_link_only_does_not_invoke_the_subfactory(session: Session) -> None:
    customer = CustomerFactory.create()
    next_number = CustomerFactory._meta.next_sequence()
    customers = count(session, Customer)
    with StatementLog(session) as statements:
        service = ServiceFactory.create(customer=LinkOnly(customer))
        account = BillingAccountFactory.create(LinkOnly(customer))
    assert service.customer is customer and account.customer is customer
    assert count(session, Customer) == customers == 1
    assert CustomerFactory._meta.next_sequence() == next_number + 1  # no sequence consumed
    assert "UPDATE" not in statements  # the linked row is never modified
    assert CustomerFactory.instances == [customer]  # tracked once, when it was created


def test_linked_instances_are_not_tracked(session: Session) -> None:
    customer = Customer(
        customer_number="CUST-99999",
        name="hand made",
        email="h@example.net",
        phone="1",
        tenant=TenantFactory.create(),
        service_address=AddressFactory.create(),
    )
    session.add(customer)
    session.flush()
    ServiceFactory.create(customer=LinkOnly(customer))
    assert customer not in CustomerFactory.instances


def test_link_only_needs_a_persistent_row_under_create(session: Session) -> None:
    transient = CustomerFactory.build()
    with pytest.raises(LinkOnlyError, match="not yet in the database") as info:
        ServiceFactory.create(customer=LinkOnly(transient))
    assert "ServiceFactory" in str(info.value) and "customer" in str(info.value)
    assert ServiceFactory.build(customer=LinkOnly(transient)).customer is transient
    gone = CustomerFactory.create()
    session.delete(gone)
    session.flush()
    with pytest.raises(LinkOnlyError, match="deleted"):
        ServiceFactory.create(LinkOnly(gone))


def test_overrides_inside_a_linked_place_are_errors(session: Session) -> None:
    customer = CustomerFactory.create()
    tenants = count(session, Tenant)
    with pytest.raises(CustomizationError, match="customer__name"):
        ServiceFactory.create(customer=LinkOnly(customer), customer__name="dropped?")
    with pytest.raises(CustomizationError, match="linked"):
        ServiceFactory.create(LinkOnly(customer), customize(Customer, name="dropped?"))
    with pytest.raises(CustomizationError, match="linked"):
        InvoiceFactory.create(LinkOnly(customer), customize(Address, city="dropped?"))
    with pytest.raises(CustomizationError, match="received an instance"):
        ServiceFactory.create(customer=customer, customer__name="dropped?")
    assert count(session, Tenant) == tenants


def test_a_place_linked_twice_is_an_error(session: Session) -> None:
    one, two = CustomerFactory.create(), CustomerFactory.create()
    with pytest.raises(CustomizationError, match="linked to an existing instance"):
        ServiceFactory.create(LinkOnly(one), customer=two)
    with pytest.raises(CustomizationError, match="set twice"):
        ServiceFactory.create(LinkOnly(one), customer=factory.SubFactory(CustomerFactory))


def test_link_only_of_the_wrong_type_or_at_the_root(session: Session) -> None:
    address = AddressFactory.create()
    with pytest.raises(LinkOnlyError, match="Customer"):
        ServiceFactory.create(customer=LinkOnly(address))
    with pytest.raises(LinkOnlyError, match="root"):
        CustomerFactory.create(LinkOnly(CustomerFactory.create()))


def test_linked_instance_is_a_hard_tenant_source(session: Session) -> None:
    customer = CustomerFactory.create()
    payment = PaymentFactory.create(LinkOnly(customer))
    assert payment.tenant_id == payment.invoice.tenant_id == customer.tenant_id
    assert count(session, Tenant) == 1 and count(session, Payment) == 1


def test_errors_are_raised_before_any_statement(session: Session) -> None:
    with StatementLog(session) as statements:
        for bad in (
            lambda: InvoiceFactory.create(
                customize(Address, city="?"), billing_account__customer__with_billing_address=True
            ),
            lambda: InvoiceFactory.create(customize(Tenant, name="?"), customize(Tenant, name="!")),
            lambda: ServiceFactory.create(customer=LinkOnly(CustomerFactory.build())),
        ):
            with pytest.raises((CustomizationError, LinkOnlyError)):
                bad()
    assert [s for s in statements if s in {"INSERT", "UPDATE", "DELETE"}] == []
