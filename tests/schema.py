"""A core test schema: five levels of foreign keys, a self-reference, a nullable FK cycle and a
composite primary key."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Company(Base):
    __tablename__ = "core_companies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))


class Department(Base):
    __tablename__ = "core_departments"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    company_id: Mapped[int] = mapped_column(ForeignKey("core_companies.id"))
    head_id: Mapped[int | None] = mapped_column(
        ForeignKey("core_employees.id", use_alter=True, name="fk_department_head")
    )
    company: Mapped[Company] = relationship()
    head: Mapped[Employee | None] = relationship(foreign_keys=[head_id], post_update=True)


class Employee(Base):
    __tablename__ = "core_employees"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    department_id: Mapped[int] = mapped_column(ForeignKey("core_departments.id"))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("core_employees.id"))
    department: Mapped[Department] = relationship(foreign_keys=[department_id])
    manager: Mapped[Employee | None] = relationship(remote_side=[id])


class Project(Base):
    __tablename__ = "core_projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("core_employees.id"))
    owner: Mapped[Employee] = relationship()


class Task(Base):
    __tablename__ = "core_tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(100))
    project_id: Mapped[int] = mapped_column(ForeignKey("core_projects.id"))
    project: Mapped[Project] = relationship()


class Assignment(Base):
    __tablename__ = "core_assignments"
    task_id: Mapped[int] = mapped_column(ForeignKey("core_tasks.id"), primary_key=True)
    employee_id: Mapped[int] = mapped_column(ForeignKey("core_employees.id"), primary_key=True)
    task: Mapped[Task] = relationship()
    employee: Mapped[Employee] = relationship()
