"""Rows mode (``insert_batch``): create_batch's plan, declarations and draws, written with Core.

The same seed gives the same data as ``create_batch`` (dump comparison, on the ISP schema and on
the project-management one: a slug-keyed tenant, a composite key and foreign key, a
self-reference), on every backend; the rows are tracked and cleaned up; what needs ORM instances
is refused before anything is written."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

import factory
import factory.random
import pytest
from factory.random import reseed_random
from sqlalchemy import Engine, event, func, select, update
from sqlalchemy.orm import Session

from dotmac_factoryboy import (
    FactoryRegistry,
    LinkOnly,
    SQLAlchemyFactory,
    TenantIsolatedFactory,
    customize,
    registry,
    tenant_context,
)
from dotmac_factoryboy.errors import RowsModeError
from dotmac_factoryboy.factory_boy_adapter import reset_sequences
from dotmac_factoryboy.isp.factories import (
    CustomerFactory,
    DeviceFactory,
    InvoiceFactory,
    ServiceFactory,
    TenantFactory,
)
from dotmac_factoryboy.isp.models import Base as ISPBase
from dotmac_factoryboy.isp.models import Customer, Service, Tenant

from .conftest import table_counts, wipe
from .dumps import dump
from .saas_factories import MemberFactory, OrganizationFactory, saas_registry
from .saas_schema import Member as SaasMember
from .saas_schema import Project, SaasBase, project_watchers
from .test_real_schemas import (
    REGISTRY,
    Base,
    Board,
    BoardFactory,
    Card,
    CommentFactory,
    Member,
    WorkspaceFactory,
)
from .test_real_schemas import db as db
from .test_rowids import Base as RowidsBase
from .test_rowids import Book, Shelf, start
from .test_rowids import schema as schema


def same_start(*registries: Any) -> None:
    """The random state and sequences a seeded run starts from."""
    factory.random.reseed_random(20261203)
    reset_sequences([f for r in registries for f in r.factories.values()], 0)


def isp_calls(create: bool) -> None:
    tenant = TenantFactory.create()
    batch = CustomerFactory.create_batch if create else CustomerFactory.insert_batch
    batch(4, tenant=tenant, business=True)
    batch(3, customize(Customer, name="Acme"), suspended=True, tenant=tenant)
    services = ServiceFactory.create_batch if create else ServiceFactory.insert_batch
    services(5, fiber=True)  # each builds its own tenant, customer and address


def stamped_alike(session: Session) -> None:
    """The database's own clock filled tenants.created_at (server_default now()): one value for
    both runs, so the dumps compare what the factories wrote."""
    session.execute(update(Tenant).values(created_at=dt.datetime(2026, 1, 1)))
    session.commit()


def test_insert_batch_writes_what_create_batch_writes(session: Session, engine: Engine) -> None:
    same_start(registry)
    isp_calls(create=True)
    session.commit()
    stamped_alike(session)
    expected = dump(engine, ISPBase.metadata)
    registry.forget(registry.current_scope)
    session.expunge_all()
    wipe(engine)
    same_start(registry)
    isp_calls(create=False)
    session.commit()
    stamped_alike(session)
    assert dump(engine, ISPBase.metadata) == expected
    assert sum(len(rows) for rows in expected.values()) == 1 + 7 * 2 + 5 * 4


def pm_calls(create: bool) -> None:
    home = WorkspaceFactory.create(slug="home")
    with tenant_context(home):
        boards = (BoardFactory.create_batch if create else BoardFactory.insert_batch)(
            3, child=True
        )  # each with a parent board: a self-reference inside the batch
        comments = CommentFactory.create_batch if create else CommentFactory.insert_batch
        comments(4)  # composite foreign key to a card with a composite primary key
    assert len(boards) == 3


def test_same_data_on_a_schema_of_its_own(db: Session, engine: Engine) -> None:
    same_start(REGISTRY)
    pm_calls(create=True)
    db.commit()
    expected = dump(engine, Base.metadata)
    REGISTRY.forget(REGISTRY.current_scope)
    db.expunge_all()
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    same_start(REGISTRY)
    pm_calls(create=False)
    db.commit()
    assert dump(engine, Base.metadata) == expected
    assert len(expected["pm_boards"]) == 3 * 2 + 4


class WatchedProjectFactory(TenantIsolatedFactory[Project]):
    """Projects with watchers: a many-to-many collection through an association table without a
    primary key, under a tenant column named ``org_id``."""

    class Meta:
        model = Project
        registry = saas_registry
        tenant_field = "org_id"

    name = factory.Sequence(lambda n: f"Watched {n}")
    lead = None


def watched_calls(create: bool) -> None:
    org = OrganizationFactory.create()
    members = MemberFactory.create_batch(3, org=org)
    batch = WatchedProjectFactory.create_batch if create else WatchedProjectFactory.insert_batch
    picks = [[members[0]], members[:2], [], members]
    batch(4, org=org, watchers=factory.Iterator(picks))
    devices = DeviceFactory.create_batch if create else DeviceFactory.insert_batch
    services = ServiceFactory.create_batch(2)  # each with a tenant of its own
    devices(1, customer=services[1].customer, services=[services[1]], router=True)


def test_many_to_many_collections_write_their_association_rows(session: Session) -> None:
    same_start(saas_registry, registry)
    watched_calls(create=True)
    session.commit()
    expected = {**dump(session.get_bind(), SaasBase.metadata), **isp_dump(session)}
    saas_registry.forget(saas_registry.current_scope)
    registry.forget(registry.current_scope)
    session.expunge_all()
    wipe(session.get_bind())
    same_start(saas_registry, registry)
    watched_calls(create=False)
    session.commit()
    assert {**dump(session.get_bind(), SaasBase.metadata), **isp_dump(session)} == expected
    assert len(expected["saas_project_watchers"]) == 1 + 2 + 0 + 3
    assert len(expected["service_devices"]) == 1


def test_association_rows_written_by_rows_mode_are_cleaned_up(session: Session) -> None:
    org = OrganizationFactory.create()
    members = MemberFactory.create_batch(2, org=org)
    WatchedProjectFactory.insert_batch(3, org=org, watchers=members)
    session.commit()
    assert session.scalar(select(func.count()).select_from(project_watchers)) == 6
    report = saas_registry.cleanup_all()
    assert not report.blocked
    assert session.scalar(select(func.count()).select_from(project_watchers)) == 0
    assert session.scalar(select(func.count()).select_from(Project)) == 0


def isp_dump(session: Session) -> dict[str, list[str]]:
    stamped_alike(session)
    return dump(session.get_bind(), ISPBase.metadata)


def test_a_member_not_in_the_database_is_refused_before_anything_is_written(
    session: Session,
) -> None:
    org = OrganizationFactory.create()
    unsaved = SaasMember(name="Not yet", role="member", org_id=org.id)  # in no session
    before = table_counts(session)
    with pytest.raises(RowsModeError, match=r"Project\.watchers holds .*neither in the database"):
        WatchedProjectFactory.insert_batch(2, org=org, watchers=[unsaved])
    assert table_counts(session) == before


def test_returns_keys_and_the_rows_are_tracked_and_cleaned_up(db: Session) -> None:
    keys = BoardFactory.insert_batch(3, name=factory.Iterator(["a", "b", "c"]))
    assert [db.get(Board, key).name for key in keys] == ["a", "b", "c"]  # type: ignore[union-attr]
    comments = CommentFactory.insert_batch(2)
    assert all(isinstance(k, int) for k in comments)
    cards = [c for c in REGISTRY.instances if isinstance(c, Card)]
    assert len(cards) == 2 and all(c.board_id is not None for c in cards)
    db.commit()
    REGISTRY.cleanup_all()
    assert [db.scalar(select(func.count()).select_from(m)) for m in (Board, Card, Member)] == [
        0
    ] * 3


def test_links_customizations_and_tenants_hold(session: Session) -> None:
    customer = CustomerFactory.create()
    keys = ServiceFactory.insert_batch(3, LinkOnly(customer))
    rows = [session.get(Service, k) for k in keys]
    assert {(s.customer_id, s.tenant_id) for s in rows} == {(customer.id, customer.tenant_id)}  # type: ignore[union-attr]
    other = ServiceFactory.insert_batch(2, customize(Customer, name="Acme"))
    made = [s for s in (session.get(Service, k) for k in other) if s is not None]
    assert len(made) == 2
    assert [s.customer.name for s in made] == ["Acme", "Acme"]
    assert all(s.tenant_id == s.customer.tenant_id != customer.tenant_id for s in made)
    assert session.scalar(select(func.count()).select_from(Tenant)) == 3


def test_a_declaration_reading_a_parents_key_gets_the_written_key(session: Session) -> None:
    class KeyReadingServiceFactory(ServiceFactory):
        class Meta:
            model = Service
            register = False

        plan = factory.LazyAttribute(lambda o: f"for customer {o.customer.id}")

    keys = KeyReadingServiceFactory.insert_batch(2)
    for service in (session.get(Service, k) for k in keys):
        assert service is not None and service.plan == f"for customer {service.customer_id}"


class OwnCreateFactory(CustomerFactory):
    class Meta:
        model = Customer
        register = False

    @classmethod
    def _create(cls, model_class: type[Any], *args: Any, **kwargs: Any) -> Any:
        return super()._create(model_class, *args, **kwargs)


class LookupFactory(CustomerFactory):
    class Meta:
        model = Customer
        register = False
        sqlalchemy_get_or_create = ("customer_number",)


@pytest.mark.parametrize(
    ("call", "where"),
    [
        (
            lambda: InvoiceFactory.insert_batch(2, paid=True),
            "post-generation declarations (payment)",
        ),
        (
            lambda: InvoiceFactory.insert_batch(2, paid=factory.Iterator([False, True])),
            "post-generation declarations (payment)",
        ),
        (lambda: OwnCreateFactory.insert_batch(2), "OwnCreateFactory overrides _create"),
        (lambda: LookupFactory.insert_batch(2), "uses sqlalchemy_get_or_create"),
        (
            lambda: ServiceFactory.insert_batch(2, customer=factory.SubFactory(OwnCreateFactory)),
            "at customer, OwnCreateFactory overrides _create",
        ),
    ],
    ids=[
        "post_generation",
        "post_generation decided per object",
        "own _create",
        "get_or_create",
        "nested own _create",
    ],
)
def test_what_needs_instances_is_refused_before_anything_is_written(
    session: Session, call: Callable[[], Any], where: str
) -> None:
    before = table_counts(session)
    with pytest.raises(RowsModeError, match="create_batch") as info:
        call()
    assert where in str(info.value)
    assert table_counts(session) == before


@pytest.fixture
def insert_listener() -> Iterator[None]:
    def stamp(mapper: Any, connection: Any, target: Any) -> None:
        target.notes = "stamped"

    event.listen(Tenant, "before_insert", stamp)
    yield
    event.remove(Tenant, "before_insert", stamp)


def test_mapper_events_are_refused(session: Session, insert_listener: None) -> None:
    before = table_counts(session)
    with pytest.raises(RowsModeError, match=r"Tenant has mapper events \(before_insert\)"):
        CustomerFactory.insert_batch(2)
    assert table_counts(session) == before


def test_a_hook_that_this_call_leaves_off_needs_no_instances(schema: Engine) -> None:
    """A trait's RelatedFactory (or any post-generation Maybe) whose branch the plan knows runs
    nothing after the object is built: rows mode writes those calls, with the rows
    ``create_batch`` writes for the same seed (on a schema of its own)."""
    dumps = []
    for how in ("create_batch", "insert_batch"):
        start(schema)
        with Session(schema) as db:
            shelf = shelf_factory(db)
            reseed_random(20261204)
            getattr(shelf, how)(3)  # the trait is off: no books
            db.commit()
            dumps.append(dump(schema, RowidsBase.metadata))
            with pytest.raises(RowsModeError, match=r"post-generation declarations \(books\)"):
                shelf.insert_batch(2, stocked=True)
    assert dumps[0] == dumps[1]
    assert len(dumps[0]["rid_shelves"]) == 2 + 3 and len(dumps[0]["rid_books"]) == 2


def shelf_factory(session: Session) -> Any:
    """Shelves whose ``stocked`` trait adds two books after each shelf is built."""
    own = FactoryRegistry()
    own.bind(session)
    book = type(
        "BookFactory",
        (SQLAlchemyFactory,),
        {
            "Meta": type("Meta", (), {"model": Book, "registry": own}),
            "title": factory.Sequence(lambda n: f"Book {n}"),
        },
    )
    return type(
        "ShelfFactory",
        (SQLAlchemyFactory,),
        {
            "Meta": type("Meta", (), {"model": Shelf, "registry": own}),
            "label": factory.Faker("word"),
            "Params": type(
                "Params",
                (),
                {"stocked": factory.Trait(books=factory.RelatedFactoryList(book, "shelf", 2))},
            ),
        },
    )
