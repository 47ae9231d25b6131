"""Reverse-dependency cleanup: children first, cycles handled, foreign rows never touched."""

from __future__ import annotations

import gc
import random
import threading
from collections.abc import Iterator
from typing import Any

import factory
import pytest
from sqlalchemy import Engine, ForeignKey, delete, event, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from dotmac_factoryboy import SQLAlchemyFactory, registry
from dotmac_factoryboy.cleanup import MAX_RANGES, collector_paused
from dotmac_factoryboy.errors import CleanupError

from .conftest import count
from .core_factories import (
    AssignmentFactory,
    CompanyFactory,
    DepartmentFactory,
    EmployeeFactory,
    ProjectFactory,
    TaskFactory,
)
from .schema import Assignment, Company, Department, Employee, Project, Task

MODELS = (Company, Department, Employee, Project, Task, Assignment)


def totals(session: Session) -> dict[str, int]:
    return {m.__name__: count(session, m) for m in MODELS}


def seed_foreign_rows(session: Session) -> Company:
    """Rows made without factories: cleanup must leave them alone."""
    company = Company(name="pre-existing")
    department = Department(name="pre-existing", company=company)
    session.add_all([company, department, Employee(name="pre", department=department)])
    session.commit()
    return company


def build_mixed_rows(rng: random.Random, total: int) -> None:
    """Hundreds of rows of every kind, created in random order, with cycles and self-refs."""
    makers = [
        lambda: CompanyFactory.create(),
        lambda: DepartmentFactory.create(),
        lambda: EmployeeFactory.create(),
        lambda: TaskFactory.create(),
        lambda: AssignmentFactory.create(),
    ]
    employees: list[Employee] = []
    for _ in range(total):
        made = rng.choice(makers)()
        if isinstance(made, Employee):
            if employees and rng.random() < 0.7:
                made.manager = rng.choice(employees)  # self-referential FK
            if rng.random() < 0.5:
                made.department.head = made  # nullable FK cycle department <-> employee
            employees.append(made)


def test_cleanup_of_hundreds_of_mixed_rows_leaves_only_foreign_rows(session: Session) -> None:
    seed_foreign_rows(session)
    before = totals(session)
    build_mixed_rows(random.Random(20261124), 300)
    session.commit()  # committed data, as code under test would leave it
    EmployeeFactory.create()  # and some still in the open transaction
    assert sum(totals(session).values()) > sum(before.values()) + 300
    registry.cleanup_all()
    assert totals(session) == before
    assert registry.instances == []
    names = session.execute(select(Company.name)).scalars().all()
    assert names == ["pre-existing"]


def test_rows_already_gone_are_skipped_silently(session: Session) -> None:
    tasks = TaskFactory.create_batch(3)
    session.execute(delete(Task).where(Task.id == tasks[0].id))
    session.commit()
    registry.cleanup_all()
    assert sum(totals(session).values()) == 0


def test_blocked_rows_raise_after_everything_else_is_deleted(session: Session) -> None:
    seed_foreign_rows(session)
    department = DepartmentFactory.create()
    free = ProjectFactory.create()
    stranger = Employee(name="not from a factory", department=department)
    session.add(stranger)
    session.commit()
    before_foreign = count(session, Employee) - 1  # the factory-made owner of `free`
    department_id, free_id = department.id, free.id
    with pytest.raises(CleanupError) as info:
        registry.cleanup_all()
    message = str(info.value)
    assert "core_departments" in message and "core_employees" in message
    assert "core_companies" in message  # blocked through the department
    blocked = {(b.table, b.referenced_by) for b in info.value.blocked}
    assert blocked == {
        ("core_departments", "core_employees"),
        ("core_companies", "core_departments"),
    }
    session.expire_all()
    assert session.get(Department, department_id) is not None
    assert session.get(Project, free_id) is None
    assert count(session, Employee) == before_foreign


@pytest.mark.parametrize("tracked", [5, MAX_RANGES + 5], ids=["key-ranges", "key-lists"])
def test_untracked_rows_between_tracked_ones_block_their_parents(
    session: Session, tracked: int
) -> None:
    """Cleanup reads only referrers it is not deleting, by key ranges while the keys make few
    and by key lists past that; either way a stranger whose key lies between tracked ones
    keeps its department, and the department its company."""
    department = DepartmentFactory.create()
    strangers = []
    for number in range(tracked):
        EmployeeFactory.create(department=department)
        strangers.append(Employee(name=f"stranger {number}", department=department))
        session.add(strangers[-1])
        session.flush()  # keys interleave: tracked, stranger, tracked, ...
    EmployeeFactory.create(department=department)  # every stranger lies between tracked keys
    session.commit()
    stranger_ids = sorted(e.id for e in strangers)
    with pytest.raises(CleanupError) as info:
        registry.cleanup_all()
    blocked = {(b.table, b.referenced_by) for b in info.value.blocked}
    assert blocked == {
        ("core_departments", "core_employees"),
        ("core_companies", "core_departments"),
    }
    session.expire_all()
    left = session.execute(select(Employee.id).order_by(Employee.id)).scalars().all()
    assert left == stranger_ids
    assert (count(session, Department), count(session, Company)) == (1, 1)


def test_cleanup_detaches_what_it_deleted_and_nothing_else(session: Session) -> None:
    """Deleted rows' objects leave the session; a row the session holds that nobody deleted
    stays in it, whether or not the deleted rows were all the session held."""
    gone = CompanyFactory.create_batch(3)
    session.commit()
    registry.cleanup_all()
    assert all(c not in session for c in gone) and len(session.identity_map) == 0
    stranger = Company(name="stranger")
    session.add(stranger)
    session.commit()
    gone = CompanyFactory.create_batch(3)
    session.commit()
    registry.cleanup_all()
    assert all(c not in session for c in gone) and stranger in session
    assert session.execute(select(Company.name)).scalars().all() == ["stranger"]


def test_factory_cleanup_removes_only_that_factory_rows(session: Session) -> None:
    CompanyFactory.create()
    ProjectFactory.create()
    ProjectFactory.cleanup()
    assert (count(session, Project), count(session, Employee), count(session, Company)) == (0, 1, 2)
    with pytest.raises(CleanupError, match="core_departments"):
        CompanyFactory.cleanup()  # the tree's company is still used by its department
    assert count(session, Company) == 1
    assert len(CompanyFactory.instances) == 1 and len(DepartmentFactory.instances) == 1


def test_nested_scope_cleans_up_only_what_it_created(session: Session) -> None:
    outer_id = CompanyFactory.create().id
    with registry.scope():
        CompanyFactory.create_batch(2)
        registry.cleanup_all()
        assert registry.instances == []
    assert count(session, Company) == 1 and session.get(Company, outer_id) is not None
    with registry.scope(cleanup=True):
        CompanyFactory.create()
    assert count(session, Company) == 1
    with registry.scope():
        kept = CompanyFactory.create()
    assert kept in registry.instances  # handed to the enclosing scope


def test_cleanup_handlers_run_lifo_after_deletes_and_all_run(session: Session) -> None:
    order: list[str] = []
    rows_seen: list[int] = []

    def failing() -> None:
        order.append("failing")
        raise RuntimeError("handler broke")

    registry.add_cleanup_handler(lambda: order.append("first"))
    CompanyFactory.add_cleanup_handler(failing)
    registry.add_cleanup_handler(lambda: rows_seen.append(count(session, Company)))
    registry.add_cleanup_handler(lambda: order.append("last"))
    CompanyFactory.create()
    with pytest.raises(CleanupError, match="handler broke") as info:
        registry.cleanup_all()
    assert order == ["last", "failing", "first"]
    assert rows_seen == [0]
    assert len(info.value.errors) == 1 and info.value.blocked == []


def test_pending_rows_of_add_only_factories_are_dropped(session: Session) -> None:
    class AddOnlyCompanyFactory(CompanyFactory):
        class Meta:
            sqlalchemy_session_persistence = None
            register = False

    AddOnlyCompanyFactory.create()
    registry.cleanup_all()
    assert session.execute(select(func.count(Company.id))).scalar_one() == 0


def test_cleanup_leaves_the_garbage_collector_as_it_found_it(session: Session) -> None:
    """A cleanup pauses the cyclic collector (speed) and restores it, on or off."""
    CompanyFactory.create()
    session.commit()
    registry.cleanup_all()
    assert gc.isenabled()
    gc.disable()
    try:
        CompanyFactory.create()
        registry.cleanup_all()
        assert not gc.isenabled()
    finally:
        gc.enable()
    assert count(session, Company) == 0


def test_the_collector_pause_survives_errors_and_overlapping_threads() -> None:
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a failed cleanup")
    assert gc.isenabled()
    inside, leave = threading.Event(), threading.Event()

    def other_cleanup() -> None:
        with collector_paused():
            inside.set()
            leave.wait(10)

    worker = threading.Thread(target=other_cleanup)
    with collector_paused():
        worker.start()
        inside.wait(10)
    assert not gc.isenabled()  # the other thread's cleanup still runs
    leave.set()
    worker.join()
    assert gc.isenabled()


class CascadeBase(DeclarativeBase):
    """A schema of this test's own: a parent whose collection cascades expunge to its children."""


class Rack(CascadeBase):
    __tablename__ = "cleanup_racks"
    id: Mapped[int] = mapped_column(primary_key=True)
    bins: Mapped[list[Bin]] = relationship(back_populates="rack", cascade="all, delete-orphan")


class Bin(CascadeBase):
    __tablename__ = "cleanup_bins"
    id: Mapped[int] = mapped_column(primary_key=True)
    rack_id: Mapped[int] = mapped_column(ForeignKey("cleanup_racks.id"))
    rack: Mapped[Rack] = relationship(back_populates="bins")


class RackFactory(SQLAlchemyFactory[Rack]):
    class Meta:
        model = Rack
        register = False


class BinFactory(SQLAlchemyFactory[Bin]):
    class Meta:
        model = Bin
        register = False

    rack = factory.SubFactory(RackFactory)


@pytest.fixture
def racks(session: Session, engine: Engine) -> Iterator[Session]:
    CascadeBase.metadata.create_all(engine)
    try:
        yield session
    finally:
        session.rollback()
        CascadeBase.metadata.drop_all(engine)


def test_children_an_expunge_cascade_took_are_not_expunged_twice(racks: Session) -> None:
    """With a row the cleanup keeps in the session, each deleted row leaves by its own
    expunge(); a parent's cascade may take its children first, and they are skipped."""
    bins = BinFactory.create_batch(2)
    stranger = Company(name="stranger")
    racks.add(stranger)
    racks.commit()
    made = [(b, b.rack) for b in bins]
    assert all(len(r.bins) == 1 for _, r in made)  # loaded: the cascade reaches them
    deletes: list[str] = []
    engine = racks.get_bind()

    def seen(_c: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        deletes.extend([statement] if statement.startswith("DELETE") else [])

    event.listen(engine, "before_cursor_execute", seen)
    try:
        registry.cleanup_all()  # (where it commits first, under snapshot isolation, none are)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(deletes) == 2  # one round: no failed expunge made it retry
    assert all(b not in racks and r not in racks for b, r in made) and stranger in racks
    assert (count(racks, Bin), count(racks, Rack), count(racks, Company)) == (0, 0, 1)
