"""The ISP reference domain: every factory and trait, uniqueness at scale, provider outputs."""

from __future__ import annotations

import ipaddress
from decimal import Decimal

import factory
import netaddr
import pytest
from faker import Faker
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry, tenant_context
from dotmac_factoryboy.isp import factories as f
from dotmac_factoryboy.isp.models import Customer, Device, Invoice, Payment, Tenant
from dotmac_factoryboy.plan import is_declaration
from dotmac_factoryboy.providers import VENDOR_OUIS, ISPProvider

from .conftest import count

CASES = [
    (factory_cls, trait)
    for factory_cls in (
        f.TenantFactory,
        f.AddressFactory,
        f.UserFactory,
        f.CustomerFactory,
        f.ServiceFactory,
        f.BillingAccountFactory,
        f.InvoiceFactory,
        f.PaymentFactory,
        f.DeviceFactory,
        f.TicketFactory,
    )
    for trait in (
        None,
        *(n for n, p in factory_cls._meta.parameters.items() if isinstance(p, factory.Trait)),
    )
]


@pytest.mark.parametrize(("factory_cls", "trait"), CASES, ids=lambda v: getattr(v, "__name__", v))
def test_every_factory_and_trait_creates_valid_rows(
    session: Session, factory_cls: type, trait: str | None
) -> None:
    made = factory_cls.create(**({trait: True} if trait else {}))
    session.commit()
    session.expire_all()
    model = factory_cls._meta.model
    row = session.get(model, made.id)
    assert row is not None
    if model is not Tenant:
        assert row.tenant_id == session.execute(select(Tenant.id)).scalar_one()
    if trait:
        expectations = {
            k: v
            for k, v in factory_cls._meta.parameters[trait].overrides.items()
            if not is_declaration(v) and k not in factory_cls._meta.parameters
        }
        for key, value in expectations.items():
            assert getattr(row, key) == value, (trait, key)


def test_registered_names() -> None:
    expected = {
        "tenant_factory",
        "address_factory",
        "user_factory",
        "customer_factory",
        "service_factory",
        "billing_account_factory",
        "invoice_factory",
        "payment_factory",
        "device_factory",
        "ticket_factory",
    }
    assert expected <= set(registry.names())


def test_realistic_defaults_and_formats(session: Session) -> None:
    service = f.ServiceFactory.create()
    customer = service.customer
    assert customer.customer_number.startswith("CUST-") and len(customer.customer_number) >= 10
    assert service.service_id.startswith("SRV-") and len(service.service_id) >= 10
    assert ipaddress.ip_address(service.ip_address).is_private
    assert "@" in customer.email and customer.service_address.street
    assert f.ServiceFactory.create(fiber=True).bandwidth_mbps >= 500


def test_paid_invoice_has_a_matching_payment_and_overdue_is_past_due(session: Session) -> None:
    paid = f.InvoiceFactory.create(paid=True, amount=Decimal("12.50"))
    payments = session.execute(select(Payment).where(Payment.invoice_id == paid.id)).scalars().all()
    assert [p.amount for p in payments] == [Decimal("12.50")]
    overdue = f.InvoiceFactory.create(overdue=True)
    assert overdue.status == "overdue" and overdue.due_on < overdue.issued_on.today()


@pytest.mark.parametrize("vendor", ["cisco", "mikrotik", "ubiquiti", "juniper", "huawei"])
def test_device_vendor_traits_use_that_vendors_oui(session: Session, vendor: str) -> None:
    device = f.DeviceFactory.create(**{vendor: True}, router=True)
    assert device.vendor == vendor and device.mac_address[:8] in VENDOR_OUIS[vendor]


def test_ten_thousand_customers_and_devices_have_unique_columns(session: Session) -> None:
    tenant = f.TenantFactory.create()
    with tenant_context(tenant), registry.scope():
        f.CustomerFactory.create_batch(10_000)
        f.DeviceFactory.create_batch(10_000)
    session.commit()
    for column in (Customer.customer_number, Device.mac_address, Device.serial_number):
        distinct = session.execute(select(func.count(func.distinct(column)))).scalar_one()
        assert distinct == 10_000, column
    assert count(session, Customer) == count(session, Device) == 10_000


def test_unique_generators_hold_for_100_000_builds() -> None:
    numbers = [f.CustomerFactory._meta.next_sequence() for _ in range(100_000)]
    from dotmac_factoryboy.providers import vendor_mac

    assert len({vendor_mac("cisco", n) for n in numbers}) == 100_000
    assert len(set(numbers)) == 100_000


# -- the Faker provider -----------------------------------------------------------------------


@pytest.fixture
def fake() -> Faker:
    faker = Faker()
    faker.add_provider(ISPProvider)
    faker.seed_instance(7)
    return faker


def test_ip_addresses_are_private_or_global(fake: Faker) -> None:
    for _ in range(2000):
        assert ipaddress.ip_address(fake.private_ipv4()).is_private
        assert ipaddress.ip_address(fake.public_ipv4()).is_global


@pytest.mark.parametrize("vendor", sorted(VENDOR_OUIS))
def test_vendor_ouis_are_registered_to_that_vendor_by_ieee(fake: Faker, vendor: str) -> None:
    names = {
        "cisco": "cisco",
        "mikrotik": "routerboard",
        "ubiquiti": "ubiquiti",
        "juniper": "juniper",
        "huawei": "huawei",
        "nokia": "nokia",
        "zte": "zte",
    }
    for _ in range(50):
        mac = fake.mac_address_vendor(vendor)
        organisation = netaddr.EUI(mac).oui.registration().org.lower()
        assert names[vendor] in organisation, (vendor, mac, organisation)


def test_unknown_vendor_lists_the_known_ones(fake: Faker) -> None:
    with pytest.raises(ValueError, match=r"cisco.*zte"):
        fake.mac_address_vendor("acme")


def test_number_formats(fake: Faker) -> None:
    assert fake.service_id()[:4] == "SRV-" and len(fake.service_id()) == 10
    assert fake.customer_number()[:5] == "CUST-" and len(fake.customer_number()) == 10
    assert fake.account_number().startswith("ACC-") and fake.invoice_number().startswith("INV-")
    assert fake.serial_number().isalnum()


def test_provider_is_usable_through_factory_faker() -> None:
    class Stub(factory.DictFactory):
        service = factory.Faker("service_id")

    assert Stub()["service"].startswith("SRV-")


def test_tenant_invoice_counts(session: Session) -> None:
    f.InvoiceFactory.create_batch(3)
    assert count(session, Invoice) == 3 and count(session, Tenant) == 3
