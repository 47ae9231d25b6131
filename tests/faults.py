"""Failures injected at each stage of a call (a declaration before and after an early write, a
post_generation hook, a RelatedFactory, the INSERT after an early write, the k-th object of a
batch): used by ``test_faults`` and by the reliability state machine."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import factory

from dotmac_factoryboy.isp.factories import CustomerFactory, ServiceFactory
from dotmac_factoryboy.isp.models import Customer, Service

TAKEN = "TAKEN"
"""A customer number the caller wrote before: creating it again is a unique violation."""


class Injected(Exception):
    """The failure a test injects."""


def boom(*_: Any) -> Any:
    raise Injected("injected")


class LateFailingServiceFactory(ServiceFactory):
    """Reads its customer's key (an early write of customer, address, tenant), then fails."""

    class Meta:
        model = Service
        register = False

    plan = factory.LazyAttribute(lambda o: f"for customer {o.customer.id}")
    ip_address = factory.LazyAttribute(boom)


class HookFailingCustomerFactory(CustomerFactory):
    class Meta:
        model = Customer
        register = False

    @factory.post_generation
    def explode(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        assert obj.id is not None  # written early: the hook read its key
        raise Injected("in a post_generation hook")


class RelatedThenFailingCustomerFactory(CustomerFactory):
    class Meta:
        model = Customer
        register = False

    service = factory.RelatedFactory(ServiceFactory, factory_related_name="customer")

    @factory.post_generation
    def explode(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        raise Injected("after a RelatedFactory wrote its service")


class DanglingServiceFactory(ServiceFactory):
    """Reads its customer's key (an early write), then points ``customer_id`` at no row: the
    relationship is excluded from the model's arguments, or SQLAlchemy would sync its key."""

    class Meta:
        model = Service
        register = False
        exclude = ("customer",)

    plan = factory.LazyAttribute(lambda o: f"for customer {o.customer.id}")
    customer_id = factory.LazyFunction(lambda: 987654)


def kth_failing_batch() -> Any:
    numbers = itertools.count()

    def number() -> str:
        n = next(numbers)
        if n == 3:
            raise Injected("at the 4th object of a batch")
        return f"B-{n}"

    return CustomerFactory.create_batch(6, customer_number=factory.LazyFunction(number))


FAULTS: dict[str, Callable[[], Any]] = {
    "a declaration, before anything is written": lambda: CustomerFactory.create(
        name=factory.LazyFunction(boom)
    ),
    "a declaration, after an early write": lambda: LateFailingServiceFactory.create(),
    "a post_generation hook, after an early write": lambda: HookFailingCustomerFactory.create(),
    "after a RelatedFactory wrote": lambda: RelatedThenFailingCustomerFactory.create(),
    "the INSERT (after an early write): a unique violation": lambda: CustomerFactory.create(
        customer_number=TAKEN
    ),
    "the INSERT (after an early write): a foreign-key violation": lambda: (
        DanglingServiceFactory.create()
    ),
    "the k-th object of a batch": kth_failing_batch,
}

SAYS = {
    "the INSERT (after an early write): a unique violation": ("unique", "duplicate"),
    "the INSERT (after an early write): a foreign-key violation": ("foreign key",),
}
"""What the database's message says for the faults injected at the INSERT (on every backend), so
a fault cannot pass by failing for another reason (a NOT NULL column, say)."""
