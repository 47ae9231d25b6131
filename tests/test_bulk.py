"""Unit-of-work persistence and create_batch (issue 11): a batch gives the same rows as n creates,
writes in chunks, is all or nothing, and early-writes rows whose keys are read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import factory
import pytest
from factory.random import reseed_random
from sqlalchemy import Engine, MetaData, event, select
from sqlalchemy.orm import Session

from dotmac_factoryboy import LinkOnly, customize, registry
from dotmac_factoryboy.errors import BatchError
from dotmac_factoryboy.isp.factories import CustomerFactory, TenantFactory
from dotmac_factoryboy.isp.models import Address, Customer

from .conftest import table_counts, wipe
from .saas_factories import (
    MemberFactory,
    OrganizationFactory,
    ProjectFactory,
    TaskFactory,
    saas_registry,
)
from .saas_schema import Member, Organization, Project, SaasBase, Task


class NamedOrgFactory(OrganizationFactory):
    class Meta:
        sqlalchemy_get_or_create = ("name",)
        register = False


class CommittingMemberFactory(MemberFactory):
    class Meta:
        sqlalchemy_session_persistence = "commit"
        register = False


class TitledTaskFactory(TaskFactory):
    """A LazyAttribute that reads its parent's primary key: the parent must be written first."""

    class Meta:
        register = False

    title = factory.LazyAttribute(lambda o: f"task of project {o.project.id}")


def dump(session: Session, metadata: MetaData) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every integer-keyed table, keys replaced by their rank (stable across runs)."""
    session.expire_all()
    ranks: dict[str, dict[Any, int]] = {}
    rows: dict[str, list[Any]] = {}
    for table in metadata.sorted_tables:
        found = session.execute(select(table).order_by(*table.primary_key.columns)).all()
        rows[table.name] = found
        if len(table.primary_key.columns) == 1:
            key = table.primary_key.columns[0].name
            ranks[table.name] = {getattr(r, key): i for i, r in enumerate(found)}
    out: dict[str, list[tuple[Any, ...]]] = {}
    for table in metadata.sorted_tables:
        mapping: dict[str, dict[Any, int]] = {}
        for column in table.columns:
            if column.primary_key and column.name in (c.name for c in table.primary_key.columns):
                mapping[column.name] = ranks.get(table.name, {})
            for fk in column.foreign_keys:
                mapping[column.name] = ranks.get(fk.column.table.name, {})
        out[table.name] = sorted(
            (
                tuple(
                    mapping[c.name].get(v, v) if c.name in mapping else v
                    for c, v in zip(table.columns, row, strict=True)
                )
                for row in rows[table.name]
            ),
            key=repr,
        )
    return out


def fresh(session: Session, engine: Engine) -> None:
    """Empty database, restarted sequences and Faker: the same starting point for both runs."""
    session.rollback()
    session.expunge_all()
    wipe(engine)
    for factories in (saas_registry.factories.values(), registry.factories.values()):
        for factory_cls in factories:
            factory_cls.reset_sequence(force=True)
    for factory_cls in (NamedOrgFactory, CommittingMemberFactory, TitledTaskFactory):
        factory_cls.reset_sequence(force=True)
    reseed_random(1234)


Setup = Callable[[], tuple[tuple[Any, ...], dict[str, Any]]]


def same_as_creates(session: Session, engine: Engine, factory_cls: Any, setup: Setup) -> None:
    """create_batch(4) and four create() calls leave identical databases and tracking."""
    results = []
    for batched in (True, False):
        fresh(session, engine)
        with saas_registry.scope(), registry.scope():
            routed, kwargs = setup()
            before = len(saas_registry.instances) + len(registry.instances)
            if batched:
                made = factory_cls.create_batch(4, *routed, **kwargs)
            else:
                made = [factory_cls.create(*routed, **kwargs) for _ in range(4)]
            tracked = len(saas_registry.instances) + len(registry.instances) - before
            session.commit()
            results.append((dump(session, SaasBase.metadata), tracked, len(made)))
            saas_registry.forget(saas_registry.current_scope)
            registry.forget(registry.current_scope)
    fresh(session, engine)
    assert results[0] == results[1]


def test_batch_equals_creates_with_traits_customize_and_new_tenants(
    session: Session, engine: Engine
) -> None:
    def setup() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (customize(Member, path="reporter", role="qa"),), {"project__guest_lead": True}

    same_as_creates(session, engine, TaskFactory, setup)


def test_batch_equals_creates_with_link_only_and_post_generation(
    session: Session, engine: Engine
) -> None:
    def linked() -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (LinkOnly(ProjectFactory.create()),), {}

    same_as_creates(session, engine, TaskFactory, linked)

    def watched() -> tuple[tuple[Any, ...], dict[str, Any]]:
        org = OrganizationFactory.create()
        return (), {"watchers": MemberFactory.create_batch(2, org=org)}

    same_as_creates(session, engine, ProjectFactory, watched)


def test_batch_equals_creates_with_get_or_create_and_commit(
    session: Session, engine: Engine
) -> None:
    same_as_creates(session, engine, NamedOrgFactory, lambda: ((), {"name": "Shared"}))
    org_holder: list[Organization] = []

    def committed() -> tuple[tuple[Any, ...], dict[str, Any]]:
        org_holder[:] = [OrganizationFactory.create()]
        return (), {"org": org_holder[0]}

    same_as_creates(session, engine, CommittingMemberFactory, committed)


def test_a_lazy_attribute_reading_a_parents_key_gets_the_written_key(session: Session) -> None:
    one = TitledTaskFactory.create()
    many = TitledTaskFactory.create_batch(3)
    for task in [one, *many]:
        assert task.title == f"task of project {task.project_id}"
        assert task.project_id is not None


def test_a_single_create_of_a_tree_writes_in_one_round(session: Session) -> None:
    org = OrganizationFactory.create()
    with Flushes(session) as flushes:
        TaskFactory.create(tenant=org)
    assert flushes == [4]  # member x2, project, task: one flush, not one per object


def test_batches_write_in_chunks_of_the_chunk_size(session: Session) -> None:
    org = OrganizationFactory.create()

    class ChunkedFactory(MemberFactory):
        class Meta:
            batch_chunk_size = 3
            register = False

    with Flushes(session) as flushes, Statements(session) as statements:
        members = ChunkedFactory.create_batch(7, org=org)
    assert flushes == [3, 3, 1]
    inserts = [s for s in statements if s.startswith("INSERT INTO saas_members")]
    if session.get_bind().dialect.name == "postgresql":
        assert len(inserts) == 3  # one multi-row statement per chunk
    assert len({m.id for m in members}) == 7
    assert session.execute(select(Member).where(Member.org_id == org.id)).scalars().all()


def test_a_failing_row_undoes_the_whole_batch_and_names_its_index(session: Session) -> None:
    tenant = TenantFactory.create()
    CustomerFactory.create(tenant=tenant, customer_number="TAKEN")
    session.commit()
    before = table_counts(session)
    tracked = len(registry.instances)
    numbers = iter(["N-0", "N-1", "TAKEN", "N-3", "N-4"])
    with pytest.raises(BatchError) as info:
        CustomerFactory.create_batch(
            5, tenant=tenant, customer_number=factory.LazyFunction(lambda: next(numbers))
        )
    assert info.value.index == 2
    assert "CustomerFactory.create_batch(5): object 2 failed" in str(info.value)
    assert table_counts(session) == before
    assert len(registry.instances) == tracked
    again = CustomerFactory.create(tenant=tenant)  # the session is usable
    session.commit()
    assert session.get(Customer, again.id) is not None
    assert session.get(Address, again.service_address_id) is not None


def test_project_rows_of_a_batch_read_back(session: Session) -> None:
    projects = ProjectFactory.create_batch(5, guest_lead=True)
    session.expire_all()
    rows = session.execute(select(Project).order_by(Project.id)).scalars().all()
    assert [p.id for p in rows] == [p.id for p in projects]
    assert {p.lead.role for p in rows if p.lead is not None} == {"guest"}
    assert session.execute(select(Task)).first() is None


class Flushes:
    """How many new rows each flush of the session wrote, while active."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.found: list[int] = []

    def __enter__(self) -> list[int]:
        event.listen(self.session, "before_flush", self._record)
        return self.found

    def __exit__(self, *exc: object) -> None:
        event.remove(self.session, "before_flush", self._record)

    def _record(self, session: Session, context: object, instances: object) -> None:
        if session.new:
            self.found.append(len(session.new))


class Statements:
    """The SQL statements the session's engine runs while active (first words only)."""

    def __init__(self, session: Session) -> None:
        self.engine = session.get_bind()
        self.found: list[str] = []

    def __enter__(self) -> list[str]:
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self.found

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        self.found.append(" ".join(statement.split()[:3]))
