"""The plugin's ``async_db_session``, the way users meet it: generated projects (models of their
own: UUID-keyed tenants behind ``org_id``) run by pytester under anyio's pytest plugin and
pytest-asyncio's strict and auto modes, on each configured backend, given a sync or an async URL."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from dotmac_factoryboy.engines import async_url

from .backends import BACKENDS
from .test_pytest_plugin import server_url

MODELS = """
import uuid

import factory
from sqlalchemy import ForeignKey, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dotmac_factoryboy import SQLAlchemyFactory, TenantIsolatedFactory


class Base(DeclarativeBase):
    pass


class Org(Base):
    __tablename__ = "orgs"
    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(60))


class Project(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("orgs.id"))
    title: Mapped[str] = mapped_column(String(60))
    org: Mapped[Org] = relationship()


class OrgFactory(SQLAlchemyFactory[Org]):
    class Meta:
        model = Org

    name = factory.Sequence(lambda n: f"org {n}")


class ProjectFactory(TenantIsolatedFactory[Project]):
    class Meta:
        model = Project
        tenant_field = "org_id"

    title = factory.Sequence(lambda n: f"project {n}")

    class Params:
        launched = factory.Trait(title=factory.LazyAttribute(lambda o: f"live: {o.org_id is not None}"))
"""

TESTS = """
import pytest
from sqlalchemy import create_engine, func, select

from dotmac_factoryboy import customize, tenant_context
from dotmac_factoryboy.errors import ConfigurationError
from models import Org, Project, ProjectFactory

{mark}


async def rows(session, model):
    return await session.scalar(select(func.count()).select_from(model))


async def test_1_creates_and_commits(async_db_session, factory_engine):
    project = await ProjectFactory.create_async(customize(Org, name="Acme"), launched=True)
    assert project.title == "live: True" and project.org.name == "Acme"
    more = await ProjectFactory.create_batch_async(3, org=project.org)
    assert {{p.org_id for p in more}} == {{project.org_id}}
    with tenant_context(project.org):
        assert (await ProjectFactory.create_async()).org_id == project.org_id
    await async_db_session.commit()
    assert await rows(async_db_session, Project) == 5
    with pytest.raises(ConfigurationError, match="create_async"):
        ProjectFactory.create()
    with factory_engine.connect() as other:  # committed for real only in cleanup mode
        seen = other.scalar(select(func.count()).select_from(Project))
    assert seen == {seen_elsewhere}


async def test_2_sees_nothing(async_db_session):
    assert await rows(async_db_session, Project) == 0 and await rows(async_db_session, Org) == 0
"""

RUNNERS = {
    "anyio": ("-p", "no:asyncio"),
    "asyncio-strict": ("-p", "no:anyio", "-o", "asyncio_mode=strict"),
    "asyncio-auto": ("-p", "no:anyio", "-o", "asyncio_mode=auto"),
}
MARKS = {
    "anyio": """pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"
""",
    "asyncio-strict": "pytestmark = pytest.mark.asyncio",
    "asyncio-auto": "",
}


def project(pytester: pytest.Pytester, runner: str, seen_elsewhere: int) -> None:
    pytester.makepyfile(models=MODELS)
    pytester.makepyfile(
        test_async_project=TESTS.format(mark=MARKS[runner], seen_elsewhere=seen_elsewhere)
    )


def run(
    pytester: pytest.Pytester, runner: str, *args: str, url: str | None = None
) -> pytest.RunResult:
    options = [*RUNNERS[runner], "-p", "no:cacheprovider", "--factory-metadata", "models:Base"]
    if url:
        options += ["--factory-db-url", url]
    return pytester.runpytest_subprocess(*options, *args)


@pytest.mark.parametrize("runner", list(RUNNERS))
def test_async_db_session_under_each_runner(pytester: pytest.Pytester, runner: str) -> None:
    project(pytester, runner, seen_elsewhere=0)
    run(pytester, runner).assert_outcomes(passed=2)


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str | None:
    return server_url(request.param)


@pytest.mark.parametrize(
    ("isolation", "seen_elsewhere", "given"),
    [("rollback", 0, "sync URL"), ("cleanup", 5, "async URL")],
    ids=["rollback-sync-url", "cleanup-async-url"],
)
def test_async_db_session_isolates_on_each_backend(
    pytester: pytest.Pytester,
    backend_url: str | None,
    given: str,
    isolation: str,
    seen_elsewhere: int,
) -> None:
    if backend_url is None and given == "async URL":
        backend_url = f"sqlite+aiosqlite:///{pytester.path / 'given.db'}"
    elif backend_url is not None and given == "async URL":
        backend_url = async_url(backend_url).render_as_string(hide_password=False)
    pytester.makeini(f"[pytest]\nfactory_isolation = {isolation}\n")
    project(pytester, "anyio", seen_elsewhere)
    result = run(pytester, "anyio", url=backend_url)
    result.assert_outcomes(passed=2)
    if backend_url is not None:
        assert make_url(backend_url).get_backend_name() in "".join(result.outlines)
