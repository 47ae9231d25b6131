"""Failed calls leave nothing: a failure injected at each stage of a call (a declaration before
and after an early write, a post_generation hook, a RelatedFactory, the INSERT after an early
write, the k-th object of a batch) leaves no row of that call, tracks nothing of it, keeps the
session usable with the caller's earlier, uncommitted rows, and the next call works. Runs on
every backend, and again through the ``*_async`` calls (see through_async)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry
from dotmac_factoryboy.isp.factories import AddressFactory, CustomerFactory, ServiceFactory
from dotmac_factoryboy.isp.models import Address, Customer, Service

from .conftest import table_counts
from .faults import FAULTS, SAYS, TAKEN


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failed_call_leaves_nothing_and_the_session_goes_on(session: Session, fault: str) -> None:
    taken = CustomerFactory.create(customer_number=TAKEN)
    session.commit()
    kept = CustomerFactory.create()  # the caller's own work, not committed yet
    before, tracked = table_counts(session), list(registry.instances)
    with pytest.raises(Exception) as info:
        FAULTS[fault]()
    assert not isinstance(info.value, AssertionError), info.value
    message = str(info.value).lower()
    assert any(word in message for word in SAYS.get(fault, ("",))), message
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
    taken = CustomerFactory.create(customer_number=TAKEN)
    session.commit()
    before, tracked = table_counts(session), list(registry.instances)
    with pytest.raises(IntegrityError):
        AddressFactory.create(city=None)  # one table, no key read before its INSERT
    session.rollback()
    assert table_counts(session) == before and registry.instances == tracked
    again = AddressFactory.create()
    session.commit()
    assert session.get(Address, again.id) is again and taken.id is not None
