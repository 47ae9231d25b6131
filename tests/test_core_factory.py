"""SQLAlchemyFactory: sessions, persistence, batches, validation, registration, tracking."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import factory
import pytest
from factory.alchemy import SQLAlchemyModelFactory
from factory.errors import FactoryError
from sqlalchemy import select
from sqlalchemy.orm import Session

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory, registry
from dotmac_factoryboy.errors import BatchSizeError, ConfigurationError, UnknownFieldError

from .conftest import count
from .core_factories import CompanyFactory, DepartmentFactory, EmployeeFactory, TaskFactory
from .schema import Company, Department, Employee, Project, Task


def test_create_flushes_by_default_so_every_instance_has_its_key(session: Session) -> None:
    task = TaskFactory.create()
    assert task.id is not None and task.project.owner.department.company.id is not None
    assert count(session, Task) == 1 and count(session, Company) == 1


def test_build_and_stub_need_no_session() -> None:
    task = TaskFactory.build(title="offline")
    assert task.title == "offline" and task.id is None
    assert TaskFactory.stub(title="s").title == "s"


def test_create_without_any_session_names_the_factory_and_both_fixes() -> None:
    with pytest.raises(ConfigurationError) as info:  # a new context: no session, bound or lazy
        contextvars.Context().run(CompanyFactory.create)
    message = str(info.value)
    assert "CompanyFactory" in message and "registry.bind" in message
    assert "sqlalchemy_session" in message
    assert isinstance(info.value, FactoryError) and isinstance(info.value, RuntimeError)


def test_bound_session_is_per_thread_and_per_task(session: Session) -> None:
    seen: list[object] = []
    thread = threading.Thread(target=lambda: seen.append(registry.bound_session))
    thread.start()
    thread.join()

    async def in_task() -> object:
        registry.bind(None)
        return registry.bound_session

    assert seen == [None]
    assert asyncio.run(in_task()) is None
    assert registry.bound_session is session


def test_meta_session_beats_the_bound_one(engine, session: Session) -> None:  # type: ignore[no-untyped-def]
    other = Session(engine)

    class PinnedCompanyFactory(SQLAlchemyFactory[Company]):
        class Meta:
            model = Company
            sqlalchemy_session = other
            register = False

        name = "pinned"

    try:
        company = PinnedCompanyFactory.create()
        assert company in other and company not in session
    finally:
        other.rollback()
        other.close()


@pytest.mark.parametrize("method", ["create_batch", "build_batch"])
def test_batch_accepts_size_or_count_but_not_both(session: Session, method: str) -> None:
    assert len(getattr(CompanyFactory, method)(3)) == 3
    assert len(getattr(CompanyFactory, method)(count=2, name="x")) == 2
    with pytest.raises(BatchSizeError, match="given twice"):
        getattr(CompanyFactory, method)(2, count=2)
    with pytest.raises(ValueError, match=">= 0"):
        getattr(CompanyFactory, method)(-1)
    expected = 5 if method == "create_batch" else 0
    assert count(session, Company) == expected


def test_unknown_keyword_fails_before_any_insert_with_close_matches(session: Session) -> None:
    with pytest.raises(UnknownFieldError) as info:
        TaskFactory.create(titel="typo")
    assert "TaskFactory" in str(info.value) and "'title'" in str(info.value)
    with pytest.raises(UnknownFieldError) as nested:
        TaskFactory.create(project__owner__nmae="typo")
    assert "EmployeeFactory" in str(nested.value) and "project.owner" in str(nested.value)
    assert "'name'" in str(nested.value)
    assert count(session, Task) == 0 and count(session, Company) == 0


def test_every_subclass_auto_registers_under_its_model_name() -> None:
    assert registry.get_factory("company_factory") is CompanyFactory
    assert registry.factory_for(Department) is DepartmentFactory
    assert "task_factory" in registry.names()


def test_throwaway_subclasses_do_not_replace_the_registered_factory() -> None:
    throwaway = type("Factory", (EmployeeFactory,), {})
    assert throwaway._meta.model is Employee
    assert registry.get_factory("employee_factory") is EmployeeFactory


def test_meta_registry_and_register_false() -> None:
    private = FactoryRegistry()

    class PrivateProjectFactory(SQLAlchemyFactory[Project]):
        class Meta:
            model = Project
            registry = private

    class HiddenProjectFactory(SQLAlchemyFactory[Project]):
        class Meta:
            model = Project
            register = False

    assert private.get_factory("project_factory") is PrivateProjectFactory
    assert registry.get_factory("project_factory") is not HiddenProjectFactory
    with pytest.raises(ConfigurationError, match="FactoryRegistry"):

        class BadFactory(SQLAlchemyFactory[Project]):
            class Meta:
                model = Project
                registry = "nope"


def test_tracking_records_subfactory_rows_and_batches(session: Session) -> None:
    with registry.scope():
        TaskFactory.create()
        CompanyFactory.create_batch(2)
        tracked = {type(i).__name__ for i in registry.instances}
        assert tracked == {"Task", "Project", "Employee", "Department", "Company"}
        assert len(CompanyFactory.instances) == 3
        assert len(TaskFactory.instances) == 1


def test_get_or_create_returns_the_existing_row_and_does_not_track_it(session: Session) -> None:
    class NamedCompanyFactory(SQLAlchemyFactory[Company]):
        class Meta:
            model = Company
            sqlalchemy_get_or_create = ("name",)
            register = False

        name = "Acme"

    with registry.scope():
        first = NamedCompanyFactory.create()
        second = NamedCompanyFactory.create()
        assert first is second and count(session, Company) == 1
        assert len(registry.instances) == 1


def test_factory_boy_sqlalchemy_behaviours_hold_with_our_base(engine) -> None:  # type: ignore[no-untyped-def]
    """factory_boy's documented persistence modes and session factory, on SQLAlchemyFactory."""
    reader = Session(engine)
    made: list[Session] = []

    def session_factory() -> Session:
        made.append(Session(engine))
        return made[-1]

    def factory_for(persistence: str | None, **meta: object) -> type[SQLAlchemyModelFactory]:
        attrs = {"model": Company, "register": False, **meta}
        if persistence != "default":
            attrs["sqlalchemy_session_persistence"] = persistence
        Meta = type("Meta", (), attrs)
        return type("F", (SQLAlchemyFactory,), {"Meta": Meta, "name": factory.Sequence(str)})

    writer = Session(engine)
    try:
        none_factory = factory_for(None, sqlalchemy_session=writer)
        added = none_factory.create()
        assert added.id is None and added in writer.new
        writer.rollback()
        flushed = factory_for("default", sqlalchemy_session=writer).create()
        assert flushed.id is not None
        assert reader.get(Company, flushed.id) is None  # flushed, not committed
        writer.rollback()
        committed = factory_for("commit", sqlalchemy_session=writer).create()
        reader.rollback()  # a fresh snapshot (MariaDB reads are REPEATABLE READ)
        assert reader.execute(select(Company.name).where(Company.id == committed.id)).scalar_one()
        from_factory = factory_for("commit", sqlalchemy_session_factory=session_factory)
        a, b = from_factory.create(), from_factory.create()
        assert len(made) == 2 and a in made[0] and b in made[1]
        with pytest.raises(RuntimeError, match="not both"):
            factory_for(
                "flush", sqlalchemy_session=writer, sqlalchemy_session_factory=session_factory
            )
        with pytest.raises(TypeError, match="sqlalchemy_session_persistence"):
            factory_for("sometimes", sqlalchemy_session=writer)
    finally:
        for s in (reader, writer, *made):
            s.rollback()
            s.close()
        from .conftest import wipe

        wipe(engine)


def test_creates_inside_a_plain_factory_boy_subfactory_tree(session: Session) -> None:
    class PlainCompanyFactory(SQLAlchemyModelFactory):
        class Meta:
            model = Company
            sqlalchemy_session = session
            sqlalchemy_session_persistence = "flush"

        name = "plain"

    department = DepartmentFactory.create(company=factory.SubFactory(PlainCompanyFactory))
    assert department.company.name == "plain" and count(session, Department) == 1


def test_employee_tree_reads_back(session: Session) -> None:
    employee = EmployeeFactory.create(name="Ada", department__name="R&D")
    session.expire_all()
    row = session.execute(select(Employee).where(Employee.name == "Ada")).scalar_one()
    assert row.department.name == "R&D" and row.id == employee.id
