"""Factories for the ISP domain: realistic defaults, unique columns from sequences, traits.

Every factory draws Faker values unweighted (``Meta.faker_weighting = False``): uniform picks
from the same realistic lists, several times cheaper in bulk.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory

from ..factories import SQLAlchemyFactory, TenantIsolatedFactory
from ..faking import Faker
from ..providers import ISPProvider, vendor_mac
from .models import (
    Address,
    BillingAccount,
    Customer,
    Device,
    Invoice,
    Payment,
    Service,
    Tenant,
    Ticket,
    User,
)

factory.Faker.add_provider(ISPProvider)


def _today() -> dt.date:
    return dt.date.today()


class TenantFactory(SQLAlchemyFactory[Tenant]):
    class Meta:
        model = Tenant
        faker_weighting = False

    name = Faker("company")
    subdomain = factory.Sequence(lambda n: f"isp{n:06d}")
    status = "active"


class AddressFactory(TenantIsolatedFactory[Address]):
    class Meta:
        model = Address
        faker_weighting = False

    street = Faker("street_address")
    city = Faker("city")
    postal_code = Faker("postcode")
    country = "US"


class UserFactory(TenantIsolatedFactory[User]):
    class Meta:
        model = User
        faker_weighting = False

    full_name = Faker("name")
    email = factory.Sequence(lambda n: f"user{n:06d}@example.net")
    role = "support"
    is_active = True

    class Params:
        admin = factory.Trait(role="admin")
        technician = factory.Trait(role="technician")
        inactive = factory.Trait(is_active=False)


class CustomerFactory(TenantIsolatedFactory[Customer]):
    class Meta:
        model = Customer
        faker_weighting = False

    customer_number = factory.Sequence(lambda n: f"CUST-{n + 1:05d}")
    name = Faker("name")
    email = Faker("email")
    phone = Faker("phone_number")
    type = "residential"
    status = "active"
    service_address = factory.SubFactory(AddressFactory)
    billing_address = None

    class Params:
        business = factory.Trait(type="business", name=Faker("company"))
        enterprise = factory.Trait(business=True, type="enterprise")
        suspended = factory.Trait(status="suspended")
        with_billing_address = factory.Trait(billing_address=factory.SubFactory(AddressFactory))


class ServiceFactory(TenantIsolatedFactory[Service]):
    class Meta:
        model = Service
        faker_weighting = False

    customer = factory.SubFactory(CustomerFactory)
    service_id = factory.Sequence(lambda n: f"SRV-{n + 1:06d}")
    service_type = "internet"
    plan = "Home 100"
    bandwidth_mbps = 100
    monthly_price = Decimal("49.99")
    status = "active"
    ip_address = Faker("private_ipv4")

    class Params:
        fiber = factory.Trait(
            service_type="fiber_internet",
            plan="Fiber 1G",
            bandwidth_mbps=1000,
            monthly_price=Decimal("89.99"),
        )
        phone = factory.Trait(
            service_type="phone",
            plan="Voice Unlimited",
            bandwidth_mbps=0,
            monthly_price=Decimal("19.99"),
        )
        tv = factory.Trait(
            service_type="tv", plan="TV Basic", bandwidth_mbps=25, monthly_price=Decimal("29.99")
        )
        suspended = factory.Trait(status="suspended")


class BillingAccountFactory(TenantIsolatedFactory[BillingAccount]):
    class Meta:
        model = BillingAccount
        faker_weighting = False

    customer = factory.SubFactory(CustomerFactory)
    account_number = factory.Sequence(lambda n: f"ACC-{n + 1:08d}")
    credit_limit = Decimal("1000.00")
    balance = Decimal("0.00")
    currency = "USD"


class PaymentFactory(TenantIsolatedFactory[Payment]):
    class Meta:
        model = Payment
        faker_weighting = False

    invoice = factory.SubFactory("dotmac_factoryboy.isp.factories.InvoiceFactory")
    amount = factory.SelfAttribute("invoice.amount")
    method = "card"
    paid_at = factory.LazyFunction(lambda: dt.datetime.now().replace(microsecond=0))


class InvoiceFactory(TenantIsolatedFactory[Invoice]):
    class Meta:
        model = Invoice
        faker_weighting = False

    billing_account = factory.SubFactory(BillingAccountFactory)
    invoice_number = factory.Sequence(lambda n: f"INV-{n + 1:08d}")
    amount = Decimal("49.99")
    issued_on = factory.LazyFunction(_today)
    due_on = factory.LazyAttribute(lambda o: o.issued_on + dt.timedelta(days=30))
    status = "open"

    class Params:
        paid = factory.Trait(
            status="paid",
            payment=factory.RelatedFactory(
                PaymentFactory, "invoice", amount=factory.SelfAttribute("..amount")
            ),
        )
        overdue = factory.Trait(
            status="overdue",
            issued_on=factory.LazyFunction(lambda: _today() - dt.timedelta(days=45)),
        )


class DeviceFactory(TenantIsolatedFactory[Device]):
    class Meta:
        model = Device
        faker_weighting = False

    customer = None
    device_type = "cpe"
    vendor = "ubiquiti"
    mac_address = factory.LazyAttributeSequence(lambda o, n: vendor_mac(o.vendor, n))
    ip_address = Faker("private_ipv4")
    serial_number = factory.Sequence(lambda n: f"SN{n + 1:010d}")

    class Params:
        router = factory.Trait(device_type="router")
        ont = factory.Trait(device_type="ont")
        cisco = factory.Trait(vendor="cisco")
        mikrotik = factory.Trait(vendor="mikrotik")
        ubiquiti = factory.Trait(vendor="ubiquiti")
        juniper = factory.Trait(vendor="juniper")
        huawei = factory.Trait(vendor="huawei")


class TicketFactory(TenantIsolatedFactory[Ticket]):
    class Meta:
        model = Ticket
        faker_weighting = False

    customer = factory.SubFactory(CustomerFactory)
    assigned_to = None
    parent = None
    subject = Faker("sentence", nb_words=6)
    description = Faker("paragraph")
    priority = "normal"
    status = "open"

    class Params:
        urgent = factory.Trait(priority="urgent")
        closed = factory.Trait(status="closed")
