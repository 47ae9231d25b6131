"""Cleanup that can be trusted (issue 12): association rows, dependents, broken sessions, stale
snapshots, terminated connections, blocked rows kept for a retry, idempotence."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, delete, event, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from dotmac_factoryboy import registry, tenant_context
from dotmac_factoryboy.cleanup import LEFT_TOO, LINKS_OUTSIDE
from dotmac_factoryboy.errors import CleanupError
from dotmac_factoryboy.isp.factories import DeviceFactory, ServiceFactory
from dotmac_factoryboy.isp.models import service_devices

from .conftest import table_counts
from .saas_factories import (
    DocFactory,
    MemberFactory,
    OrganizationFactory,
    ProjectFactory,
    TaskFactory,
    WorkspaceFactory,
    saas_registry,
)
from .saas_schema import Member, Organization, Project, Task, project_watchers


def nonzero(session: Session) -> dict[str, int]:
    """Tables that still hold rows."""
    return {name: n for name, n in table_counts(session).items() if n}


# -- many-to-many association rows ------------------------------------------------------------


def test_association_rows_made_by_a_factory_go_with_their_rows(session: Session) -> None:
    org = OrganizationFactory.create()
    watchers = MemberFactory.create_batch(2, org=org)
    project = ProjectFactory.create(watchers=watchers)
    assert project.org_id == org.id  # the linked members decide the project's tenant
    session.commit()
    links = session.execute(select(project_watchers)).all()
    assert len(links) == 2 and {r.project_id for r in links} == {project.id}
    report = saas_registry.cleanup_all()
    assert nonzero(session) == {}
    assert sorted(table for table, _ in report.dependents) == ["saas_project_watchers"] * 2


def test_association_rows_made_by_test_code_go_with_their_rows(session: Session) -> None:
    service, device = ServiceFactory.create(), DeviceFactory.create()
    service.devices.append(device)
    session.commit()
    assert len(session.execute(select(service_devices)).all()) == 1
    registry.cleanup_all()
    assert nonzero(session) == {}


def test_an_association_row_to_an_untracked_row_still_blocks(session: Session) -> None:
    project = ProjectFactory.create()
    stranger = Member(name="app user", role="x", org_id=project.org_id)
    session.add(stranger)
    project.watchers.append(stranger)
    session.commit()
    with pytest.raises(CleanupError, match="saas_project_watchers") as info:
        saas_registry.cleanup_all()
    blocked = {(b.table, b.referenced_by) for b in info.value.blocked}
    assert ("saas_projects", "saas_project_watchers") in blocked
    assert ("saas_organizations", "saas_members") in blocked
    assert session.get(Project, project.id) is not None
    assert len(session.execute(select(project_watchers)).all()) == 1


def test_include_dependents_removes_app_rows_that_reference_only_tracked_rows(
    session: Session,
) -> None:
    project = ProjectFactory.create()
    lead = project.lead
    assert lead is not None
    app_task = Task(title="made by the app", project=project, tenant_id=project.org_id)
    app_task.reporter = lead
    session.add(app_task)
    session.commit()
    with pytest.raises(CleanupError, match="saas_tasks"):
        saas_registry.cleanup_all()
    assert nonzero(session)["saas_tasks"] == 1
    report = saas_registry.cleanup_all(include_dependents=True)
    assert nonzero(session) == {}
    assert [table for table, _ in report.dependents] == ["saas_tasks"]


# -- sessions that went wrong -------------------------------------------------------------------


def test_a_session_left_needing_a_rollback_is_rolled_back_and_cleaned(session: Session) -> None:
    task = TaskFactory.create()
    session.commit()
    session.add(Member(name=None, role="x", org_id=task.tenant_id))
    with pytest.raises(IntegrityError):
        session.flush()
    saas_registry.cleanup_all()
    assert nonzero(session) == {}


def test_a_row_inserted_after_the_snapshot_is_reported_not_raised(
    session: Session, engine: Engine
) -> None:
    project = ProjectFactory.create()
    session.commit()
    session.execute(select(Project)).all()  # the session's snapshot (MariaDB: REPEATABLE READ)
    with engine.begin() as other:
        member_id = other.execute(
            insert(Member).values(name="late", role="x", org_id=project.org_id)
        ).inserted_primary_key[0]
        other.execute(insert(project_watchers).values(project_id=project.id, member_id=member_id))
    with pytest.raises(CleanupError, match="saas_project_watchers"):
        saas_registry.cleanup_all()
    assert session.get(Project, project.id) is not None


KILLS = {  # how to find the session's server process, and how to end it from another connection
    "postgresql": ("SELECT pg_backend_pid()", "SELECT pg_terminate_backend({})"),
    "mysql": ("SELECT CONNECTION_ID()", "KILL CONNECTION {}"),
}


def kill_session_connection(session: Session, engine: Engine) -> None:
    find, kill = KILLS[engine.dialect.name]
    process = session.execute(text(find)).scalar_one()
    with engine.connect() as other:
        other.execute(text(kill.format(int(process))))


def test_a_lost_connection_after_commit_is_recovered(session: Session, engine: Engine) -> None:
    if engine.dialect.name not in KILLS:
        pytest.skip("killing a connection needs a server (PostgreSQL, MariaDB)")
    TaskFactory.create_batch(3)
    session.commit()
    kill_session_connection(session, engine)
    saas_registry.cleanup_all()
    assert nonzero(session) == {}


def test_a_connection_lost_in_the_middle_of_a_cleanup_is_recovered(
    session: Session, engine: Engine
) -> None:
    if engine.dialect.name not in KILLS:
        pytest.skip("killing a connection needs a server (PostgreSQL, MariaDB)")
    TaskFactory.create_batch(3)
    session.commit()
    find, kill = KILLS[engine.dialect.name]
    process = session.execute(text(find)).scalar_one()
    killed: list[str] = []

    def kill_at_the_first_delete(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("DELETE") and not killed:
            killed.append(statement)
            with engine.connect() as other:
                other.execute(text(kill.format(int(process))))

    event.listen(engine, "before_cursor_execute", kill_at_the_first_delete)
    try:
        saas_registry.cleanup_all()  # the first round fails; a fresh connection finishes it
    finally:
        event.remove(engine, "before_cursor_execute", kill_at_the_first_delete)
    assert killed and nonzero(session) == {}
    assert saas_registry.instances == []


# -- blocked rows are kept for a retry; idempotence -------------------------------------------------


def test_blocked_rows_stay_tracked_in_the_enclosing_scope(session: Session) -> None:
    made: list[object] = []

    def blocked_scope() -> None:
        with saas_registry.scope(cleanup=True):
            project = ProjectFactory.create()
            blocker = Task(title="app", project=project, tenant_id=project.org_id)
            session.add(blocker)
            session.commit()
            made.extend([project, blocker])

    with pytest.raises(CleanupError, match="saas_tasks"):
        blocked_scope()
    project, blocker = made
    assert project in saas_registry.instances
    session.execute(delete(Task).where(Task.id == blocker.id))  # type: ignore[attr-defined]
    session.commit()
    saas_registry.cleanup_all()
    assert nonzero(session) == {}


def test_rows_linked_to_an_enclosing_scope_say_so_and_go_with_it(session: Session) -> None:
    """An inner scope's project watched by a member the enclosing scope tracks: its association
    row links a row outside the inner cleanup, so the project (and its lead, which it holds)
    stays, tracked, with a message that says why; the enclosing scope's cleanup removes all."""
    task = TaskFactory.create()
    made: list[Project] = []

    def watched_in_a_scope() -> None:
        with saas_registry.scope(cleanup=True), tenant_context(task.tenant):
            made.append(ProjectFactory.create(watchers=[task.reporter]))
            session.commit()

    with pytest.raises(CleanupError) as info:
        watched_in_a_scope()
    message = str(info.value)
    assert f"saas_projects ({made[0].id},) is referenced from saas_project_watchers" in message
    assert "(an association row that also links rows outside this cleanup)" in message
    assert "(a tracked row this cleanup left too, above)" in message
    assert {b.why for b in info.value.blocked} == {LEFT_TOO, LINKS_OUTSIDE}
    saas_registry.cleanup_all()
    assert nonzero(session) == {}


def test_cleanup_is_idempotent_and_tolerates_deleted_modified_and_cascaded_rows(
    session: Session,
) -> None:
    tasks = TaskFactory.create_batch(2)
    docs = DocFactory.create_batch(2, workspace=WorkspaceFactory.create())
    session.commit()
    session.execute(delete(Task).where(Task.id == tasks[0].id))
    session.execute(update(Organization).values(name="renamed"))
    session.execute(text("DELETE FROM saas_workspaces"))  # ON DELETE CASCADE removes the docs
    session.commit()
    assert docs and nonzero(session).get("saas_docs") is None
    saas_registry.cleanup_all()
    assert nonzero(session) == {}
    assert saas_registry.cleanup_all().deleted == {}
