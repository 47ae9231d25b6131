"""Factories for the core test schema, written as a factory_boy user would."""

from __future__ import annotations

import factory

from dotmac_factoryboy import SQLAlchemyFactory

from .schema import Assignment, Company, Department, Employee, Project, Task


class CompanyFactory(SQLAlchemyFactory[Company]):
    class Meta:
        model = Company

    name = factory.Sequence(lambda n: f"Company {n}")


class DepartmentFactory(SQLAlchemyFactory[Department]):
    class Meta:
        model = Department

    name = factory.Sequence(lambda n: f"Department {n}")
    company = factory.SubFactory(CompanyFactory)


class EmployeeFactory(SQLAlchemyFactory[Employee]):
    class Meta:
        model = Employee

    name = factory.Sequence(lambda n: f"Employee {n}")
    department = factory.SubFactory(DepartmentFactory)


class ProjectFactory(SQLAlchemyFactory[Project]):
    class Meta:
        model = Project

    code = factory.Sequence(lambda n: f"PRJ-{n:06d}")
    owner = factory.SubFactory(EmployeeFactory)


class TaskFactory(SQLAlchemyFactory[Task]):
    class Meta:
        model = Task

    title = factory.Sequence(lambda n: f"Task {n}")
    project = factory.SubFactory(ProjectFactory)


class AssignmentFactory(SQLAlchemyFactory[Assignment]):
    class Meta:
        model = Assignment

    task = factory.SubFactory(TaskFactory)
    employee = factory.SelfAttribute("task.project.owner")
