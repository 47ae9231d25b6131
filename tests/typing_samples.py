"""Checked by ``mypy --strict`` in CI (never imported by pytest): the factories are generic."""

from __future__ import annotations

from typing_extensions import assert_type

from dotmac_factoryboy import customize
from dotmac_factoryboy.isp.factories import CustomerFactory, ServiceFactory
from dotmac_factoryboy.isp.models import Customer, Service


def created_types() -> None:
    assert_type(CustomerFactory.create(), Customer)
    assert_type(CustomerFactory(), Customer)  # factory_boy's call idiom
    assert_type(ServiceFactory(customize(Customer, name="x"), fiber=True), Service)
    assert_type(CustomerFactory.build(customize(Customer, name="x")), Customer)
    assert_type(ServiceFactory.create_batch(count=2), list[Service])
    CustomerFactory.tenant_id = None
