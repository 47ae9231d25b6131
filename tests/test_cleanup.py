"""Reverse-dependency cleanup: children first, cycles handled, foreign rows never touched."""

from __future__ import annotations

import gc
import random
import threading

import pytest
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry
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
