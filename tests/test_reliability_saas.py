"""The reliability state machine again, on the SaaS test schema: tenant columns named ``org_id``,
``tenant_id``, ``workspace_id`` and ``region_uid``, UUID keys, association tables (one without a
primary key), a self-reference and a unique code. The database is pre-filled by plain Core
inserts; every foreign row is compared column by column after every step (they are few enough),
and every foreign key between two tenant-scoped rows is checked with a SQL join."""

from __future__ import annotations

import itertools
import uuid
from collections import Counter
from typing import Any

import factory
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, rule, run_state_machine_as_test
from sqlalchemy import Engine, Table, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dotmac_factoryboy import LinkOnly, customize, tenant_context
from dotmac_factoryboy.errors import DotmacFactoryError

from .reliability import Run, alive, backend_name, new_figures, record, tenant_crossings
from .saas_factories import (
    DepotFactory,
    DocFactory,
    OrganizationFactory,
    ProjectFactory,
    ProjectMemberFactory,
    TaskFactory,
    WorkspaceFactory,
    saas_registry,
)
from .saas_schema import (
    Depot,
    Doc,
    Member,
    Organization,
    Project,
    ProjectMember,
    Region,
    SaasBase,
    Task,
    Workspace,
    project_watchers,
)

TENANT_COLUMNS = {
    "saas_members": "org_id",
    "saas_projects": "org_id",
    "saas_tasks": "tenant_id",
    "saas_docs": "workspace_id",
    "saas_depots": "region_uid",
}
CROSS_TENANT = tenant_crossings(SaasBase.metadata, lambda t: TENANT_COLUMNS.get(t.name))
TABLES = SaasBase.metadata.sorted_tables
ORGS, MEMBERS, PROJECTS, TASKS = 10, 1500, 500, 2500
WORKSPACES = [uuid.uuid5(uuid.NAMESPACE_DNS, f"workspace{i}.app") for i in range(5)]
REGIONS = [uuid.uuid5(uuid.NAMESPACE_DNS, f"region{i}.app") for i in range(5)]
TAKEN_CODE = "F00001"


def org_of(number: int) -> int:
    """The application's rule for its own rows: row ``n`` of a scoped table is org 1 + n % 10."""
    return 1 + number % ORGS


def prefill(engine: Engine) -> int:
    """About 7 500 foreign rows in every SaaS table, tenant-consistent, by plain Core inserts."""
    rows: dict[Any, list[dict[str, Any]]] = {
        Organization: [{"id": i, "name": f"app org {i}"} for i in range(1, ORGS + 1)],
        Member: [
            {"id": i, "org_id": org_of(i), "name": f"app member {i}", "role": "member"}
            for i in range(1, MEMBERS + 1)
        ],
        Project: [
            {
                "id": i,
                "org_id": org_of(i),
                "name": f"app project {i}",
                "lead_id": i if i % 7 else None,
            }
            for i in range(1, PROJECTS + 1)
        ],
        Task: [
            {
                "id": i,
                "tenant_id": org_of(1 + i % PROJECTS),
                "title": f"app task {i}",
                "project_id": 1 + i % PROJECTS,
                "reporter_id": 1 + i % PROJECTS,
                "parent_id": i - PROJECTS if i > PROJECTS else None,
            }
            for i in range(1, TASKS + 1)
        ],
        project_watchers: [
            {"project_id": 1 + k % PROJECTS, "member_id": 1 + k % PROJECTS + PROJECTS * (k % 3)}
            for k in range(1000)
        ],
        ProjectMember: [
            {"project_id": p, "member_id": p + PROJECTS, "role": "viewer"}
            for p in range(1, PROJECTS + 1)
        ],
        Workspace: [{"id": w, "name": f"app workspace {w}"} for w in WORKSPACES],
        Doc: [
            {"id": uuid.uuid5(w, str(i)), "workspace_id": w, "title": f"app doc {i}"}
            for i in range(1000)
            for w in [WORKSPACES[i % len(WORKSPACES)]]
        ],
        Region: [{"uid": r, "name": f"app region {r}"} for r in REGIONS],
        Depot: [
            {"id": i, "region_uid": REGIONS[i % len(REGIONS)], "code": f"F{i:05d}"}
            for i in range(1, 501)
        ],
    }
    with engine.begin() as connection:
        for model, values in rows.items():
            connection.execute(insert(model), values)
        if engine.dialect.name == "postgresql":  # the app's explicit ids: move the sequences on
            for table in ("organizations", "members", "projects", "tasks", "depots"):
                connection.execute(
                    text(
                        f"SELECT setval('saas_{table}_id_seq', (SELECT MAX(id) FROM saas_{table}))"
                    )
                )
    return sum(len(values) for values in rows.values())


def contents(session: Session, table: Table) -> Counter[tuple[str, ...]]:
    """Every row of ``table``, every column as text: foreign rows must stay a subset of it."""
    return Counter(tuple(map(str, row)) for row in session.execute(select(table)))


def taken_code() -> Any:
    return DepotFactory.create(code=TAKEN_CODE)


def early_then_failing() -> Any:
    return TaskFactory.create(
        title=factory.LazyAttribute(lambda o: f"for project {o.project.id}"),
        reporter=factory.LazyFunction(failing),
    )


def failing(*_: Any) -> Any:
    raise Injected("injected by the state machine")


class Injected(Exception):
    """A failure the machine injects into a call."""


class HookFailingProjectFactory(ProjectFactory):
    class Meta:
        model = Project
        register = False

    @factory.post_generation
    def explode(obj: Any, create: bool, extracted: Any, **kwargs: Any) -> None:
        raise Injected("in a post_generation hook")


class DanglingTaskFactory(TaskFactory):
    """Reads its project's key (an early write), then points ``parent_id`` at no row (the
    ``parent`` relationship is excluded from the model's arguments, or SQLAlchemy would sync it)."""

    class Meta:
        model = Task
        register = False
        exclude = ("parent",)

    title = factory.LazyAttribute(lambda o: f"for project {o.project.id}")
    parent_id = factory.LazyFunction(lambda: 987654)


def kth_failing_batch() -> Any:
    titles = itertools.count()
    return TaskFactory.create_batch(
        4, title=factory.LazyFunction(lambda: failing() if next(titles) == 2 else "fine")
    )


FAULTS: dict[str, tuple[Any, type[BaseException]]] = {
    "a declaration after an early write": (early_then_failing, Injected),
    "a post_generation hook": (lambda: HookFailingProjectFactory.create(), Injected),
    "the k-th object of a batch": (kth_failing_batch, Injected),
    "a foreign-key violation after an early write": (
        lambda: DanglingTaskFactory.create(),
        IntegrityError,
    ),
}


class SaasOperations(Run):
    """Random operations on the SaaS schema; the session and counters are set by the test."""

    registries = (saas_registry,)
    crossings = CROSS_TENANT

    orgs = Bundle("orgs")
    projects = Bundle("projects")
    tasks = Bundle("tasks")
    workspaces = Bundle("workspaces")

    foreign: dict[Table, Counter[tuple[str, ...]]]

    def prefill(self, engine: Any) -> None:
        prefill(engine)

    def check_foreign(self, final: bool = False) -> None:
        for table, rows in self.foreign.items():
            now = contents(self.session, table)
            assert not rows - now, f"{table.name}: foreign rows changed or gone"
            self.figures["rows_checked"] += rows.total()

    def created_left(self) -> dict[str, int]:
        return {
            table.name: (contents(self.session, table) - self.foreign[table]).total()
            for table in TABLES
        }

    @initialize(target=tasks)
    def first_task(self) -> Any:
        """Every bundle holds a row from the start, so every rule can be drawn at once."""
        self.step()
        return TaskFactory.create()

    @initialize(target=workspaces)
    def first_workspace(self) -> Any:
        self.step()
        return WorkspaceFactory.create()

    @initialize(target=projects)
    def first_project(self) -> Any:
        self.step()
        return ProjectFactory.create()

    @rule(target=orgs)
    def new_org(self) -> Any:
        self.step()
        return OrganizationFactory.create()

    @rule(target=workspaces)
    def new_workspace(self) -> Any:
        self.step()
        return WorkspaceFactory.create()

    @rule(target=projects, owner=orgs, lead=st.sampled_from(["", "guest_lead", "admin_lead"]))
    def project(self, owner: Any, lead: str) -> Any:
        self.step()
        if not alive(owner):
            owner = OrganizationFactory.create()
        with tenant_context(owner):
            made = ProjectFactory.create(**({lead: True} if lead else {}))
        assert made.org_id == owner.id and made.lead.org_id == owner.id
        return made

    @rule(target=projects, foreign_org=st.integers(1, ORGS), size=st.integers(1, 2))
    def projects_of_a_foreign_org(self, foreign_org: int, size: int) -> Any:
        self.step()
        with tenant_context(self.session.get(Organization, foreign_org)):
            made = ProjectFactory.create_batch(size)
        assert {p.org_id for p in made} == {p.lead.org_id for p in made} == {foreign_org}
        return made[0]

    @rule(
        target=tasks,
        project=projects,
        size=st.integers(1, 3),
        role=st.sampled_from(["member", "owner"]),
    )
    def tasks_of_a_project(self, project: Any, size: int, role: str) -> Any:
        self.step()
        if not alive(project):
            project = ProjectFactory.create()
        made = TaskFactory.create_batch(
            size, LinkOnly(project), customize(Member, path="reporter", role=role)
        )
        for task in made:
            assert task.tenant_id == task.reporter.org_id == project.org_id
            assert task.reporter.role == role
        return made[0]

    @rule(foreign_project=st.integers(1, PROJECTS))
    def task_of_a_foreign_project(self, foreign_project: int) -> None:
        self.step()
        project = self.session.get(Project, foreign_project)
        task = TaskFactory.create(LinkOnly(project))
        assert task.tenant_id == task.reporter.org_id == org_of(foreign_project)

    @rule(parent=tasks)
    def subtask(self, parent: Any) -> None:
        self.step()
        if not alive(parent):
            return
        child = TaskFactory.create(LinkOnly(parent.project), parent=parent)
        assert child.parent_id == parent.id and child.tenant_id == parent.tenant_id

    @rule(task=tasks)
    def project_watched_by_a_reporter(self, task: Any) -> None:
        self.step()
        if not alive(task):
            return
        with tenant_context(task.tenant):
            made = ProjectFactory.create(watchers=[task.reporter])
        assert made.watchers == [task.reporter]

    @rule(project=projects)
    def project_member(self, project: Any) -> None:
        self.step()
        if not alive(project):
            return
        link = ProjectMemberFactory.create(LinkOnly(project))
        assert link.member.org_id == project.org_id

    @rule(workspace=workspaces, size=st.integers(1, 3))
    def docs_of_a_workspace(self, workspace: Any, size: int) -> None:
        self.step()
        if not alive(workspace):
            workspace = WorkspaceFactory.create()
        with tenant_context(workspace):
            made = DocFactory.create_batch(size)
        assert {d.workspace_id for d in made} == {workspace.id}

    @rule(size=st.integers(1, 3))
    def depots(self, size: int) -> None:
        self.step()
        made = DepotFactory.create_batch(size)
        assert all(d.region_uid is not None for d in made)

    @rule(project=projects, foreign_org=st.integers(1, ORGS))
    def cross_tenant_link_is_refused(self, project: Any, foreign_org: int) -> None:
        self.step()
        if not alive(project):
            return
        self.figures["bad_inputs"] += 1
        other = foreign_org if foreign_org != project.org_id else 1 + project.org_id % ORGS

        def link_into_another_tenant() -> None:
            with tenant_context(self.session.get(Organization, other)):
                TaskFactory.create(LinkOnly(project))

        self.refused(link_into_another_tenant, DotmacFactoryError)

    @rule(stage=st.sampled_from(sorted(FAULTS)))
    def failing_call(self, stage: str) -> None:
        self.step()
        self.figures["faults"] += 1
        call, expected = FAULTS[stage]
        self.refused(call, expected)

    @rule()
    def unique_violation_at_the_only_write(self) -> None:
        """No early write, so SQLAlchemy rolls the session back, as with factory_boy: committed
        first, the caller then rolls back, and nothing of the call remains."""
        self.step()
        self.figures["faults"] += 1
        self.session.commit()
        tracked = self.tracked()
        with pytest.raises(IntegrityError):
            taken_code()
        self.session.rollback()
        assert self.tracked() == tracked

    @rule()
    def cleanup_tasks(self) -> None:
        self.step()
        TaskFactory.cleanup()


def test_random_operations_keep_every_invariant_on_another_schema(
    session: Session, engine: Engine
) -> None:
    prefill(engine)
    figures = new_figures()

    class Machine(SaasOperations):
        pass

    Machine.session, Machine.figures = session, figures
    Machine.foreign = {table: contents(session, table) for table in TABLES}
    run_state_machine_as_test(Machine)
    record(f"{backend_name(engine)}, SaaS schema", figures)


def test_the_tenant_joins_find_a_planted_crossing(session: Session, engine: Engine) -> None:
    """The check can fail: one task pointing at another org's project is counted."""
    prefill(engine)
    assert sum(int(session.scalar(q) or 0) for q in CROSS_TENANT) == 0
    session.execute(insert(Task).values(id=TASKS + 1, tenant_id=1, title="planted", project_id=2))
    assert sum(int(session.scalar(q) or 0) for q in CROSS_TENANT) == 1
