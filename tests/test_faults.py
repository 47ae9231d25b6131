"""Failed calls leave nothing: a failure injected at each stage of a call (a declaration before
and after an early write, a post_generation hook, a RelatedFactory, the INSERT after an early
write, the k-th object of a batch) leaves no row of that call, tracks nothing of it, keeps the
session usable with the caller's earlier, uncommitted rows, and the next call works. Runs on
every backend, and again through the ``*_async`` calls (see through_async)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import factory
import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry
from dotmac_factoryboy.isp.factories import AddressFactory, CustomerFactory, ServiceFactory
from dotmac_factoryboy.isp.models import Address, Customer, Service

from .conftest import table_counts


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
        customer_number="TAKEN"
    ),
    "the INSERT (after an early write): a foreign-key violation": lambda: ServiceFactory.create(
        customer=None, customer_id=factory.LazyFunction(lambda: 987654)
    ),
    "the k-th object of a batch": kth_failing_batch,
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failed_call_leaves_nothing_and_the_session_goes_on(session: Session, fault: str) -> None:
    taken = CustomerFactory.create(customer_number="TAKEN")
    session.commit()
    kept = CustomerFactory.create()  # the caller's own work, not committed yet
    before, tracked = table_counts(session), list(registry.instances)
    with pytest.raises(Exception) as info:
        FAULTS[fault]()
    assert not isinstance(info.value, AssertionError), info.value
    assert table_counts(session) == before  # no row of the failed call
    assert registry.instances == tracked  # nothing of it tracked
    assert session.get(Customer, kept.id) is kept  # earlier work survives
    again = ServiceFactory.create()  # the next call is fine
    session.commit()
    assert session.get(Service, again.id) is again and taken.id is not None


def test_a_call_that_fails_at_its_only_write_is_rolled_back_as_sqlalchemy_does(
    session: Session,
) -> None:
    """No early write, so no SAVEPOINT (none is paid for on the common path): the failed flush
    writes nothing and SQLAlchemy rolls the session's transaction back, as with factory_boy."""
    taken = CustomerFactory.create(customer_number="TAKEN")
    session.commit()
    before, tracked = table_counts(session), list(registry.instances)
    with pytest.raises(IntegrityError):
        AddressFactory.create(city=None)  # one table, no key read before its INSERT
    session.rollback()
    assert table_counts(session) == before and registry.instances == tracked
    again = AddressFactory.create()
    session.commit()
    assert session.get(Address, again.id) is again and taken.id is not None
