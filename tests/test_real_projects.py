"""Existing factory_boy projects, as they are really written: a project-management schema of its
own (a Workspace tenant keyed by a string slug, tenant columns named ``ws``, a ``count`` column),
factories with their own sessions, lint on them, and the plugin in generated projects."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import factory
import pytest
from click.testing import CliRunner
from sqlalchemy import ForeignKey, String, create_engine, func, select, text
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory, lint
from dotmac_factoryboy.cli import main
from dotmac_factoryboy.errors import BatchError, BatchSizeError


class Base(DeclarativeBase):
    pass


class Workspace(Base):
    __tablename__ = "rp_workspaces"
    slug: Mapped[str] = mapped_column(String(40), primary_key=True)


class Counter(Base):
    __tablename__ = "rp_counters"
    id: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(40), unique=True)
    count: Mapped[int] = mapped_column(default=0)
    ws: Mapped[str | None] = mapped_column(ForeignKey("rp_workspaces.slug"))
    workspace: Mapped[Workspace | None] = relationship()


@pytest.fixture
def own_session(tmp_path: Path) -> Any:
    """A session of the factories' own, on a file database the test can read back."""
    engine = create_engine(f"sqlite:///{tmp_path / 'own.db'}")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def counters(session: Session, **meta: Any) -> Any:
    options = {"model": Counter, "registry": FactoryRegistry(), "sqlalchemy_session": session}
    return type(
        "CounterFactory",
        (SQLAlchemyFactory,),
        {
            "Meta": type("Meta", (), {**options, **meta}),
            "label": factory.Sequence(lambda n: f"c{n}"),
        },
    )


def test_count_is_the_models_field_when_the_model_has_one(own_session: Session) -> None:
    made = counters(own_session).create_batch(4, count=10)
    assert [c.count for c in made] == [10, 10, 10, 10]
    assert own_session.scalar(select(func.count()).select_from(Counter)) == 4
    with pytest.raises(BatchSizeError, match="count= is a field of Counter"):
        counters(own_session).create_batch(count=10)
    assert own_session.scalar(select(func.count()).select_from(Counter)) == 4


def test_lint_leaves_no_row_in_a_factorys_own_committing_session(
    own_session: Session, tmp_path: Path
) -> None:
    committing = counters(own_session, sqlalchemy_session_persistence="commit")
    linter = create_engine(f"sqlite:///{tmp_path / 'lint.db'}")
    Base.metadata.create_all(linter)
    with Session(linter) as lint_session:
        report = lint(session=lint_session, factories=[committing])
    assert report.ok, str(report)
    fresh = create_engine(f"sqlite:///{tmp_path / 'own.db'}")
    with fresh.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM rp_counters")) == 0
    with linter.connect() as connection:
        assert connection.scalar(text("SELECT count(*) FROM rp_counters")) == 0


def test_lint_on_a_schema_for_another_database_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "pg_only_app.py").write_text(
        textwrap.dedent(
            """
            import datetime as dt
            from sqlalchemy import text
            from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
            from dotmac_factoryboy import SQLAlchemyFactory

            class Base(DeclarativeBase):
                pass

            class Event(Base):
                __tablename__ = "pg_events"
                id: Mapped[int] = mapped_column(primary_key=True)
                at: Mapped[dt.datetime] = mapped_column(
                    server_default=text("now() at time zone 'utc'")
                )

            class EventFactory(SQLAlchemyFactory[Event]):
                class Meta:
                    model = Event
            """
        )
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        result = CliRunner().invoke(main, ["lint", "--factories", "pg_only_app"])
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("pg_only_app", None)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "cannot create the schema" in lines[0] and "--url" in lines[0]
    assert "Traceback" not in result.output


OWN_SESSION_PROJECT = """
import factory
import pytest
from sqlalchemy import String, create_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from dotmac_factoryboy import SQLAlchemyFactory, registry

class Base(DeclarativeBase):
    pass

class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(40))

engine = create_engine("sqlite://")
Base.metadata.create_all(engine)
SESSION = Session(engine)

class NoteFactory(SQLAlchemyFactory[Note]):
    class Meta:
        model = Note
        sqlalchemy_session = SESSION

    body = factory.Sequence(str)

@pytest.mark.parametrize("n", range(3))
def test_each_test_tracks_its_own_rows(n):
    NoteFactory.create()
    assert len(NoteFactory.instances) == 1
    assert len(registry.instances) == 1
"""


def test_every_test_gets_its_own_tracking_scope(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_notes=OWN_SESSION_PROJECT)
    result = pytester.runpytest_subprocess("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)


# -- a failed call leaves nothing behind ------------------------------------------------------


def failing_factories(fail_in: str) -> Any:
    """A company whose department comes from a RelatedFactory and whose post-generation hook
    reads the company's key (an early write) before failing; or a department whose LazyAttribute
    fails after its company was built."""
    from .schema import Company, Department

    class DepartmentF(SQLAlchemyFactory[Department]):
        class Meta:
            model = Department
            register = False

        name = factory.Sequence(lambda n: f"d{n}")

    class CompanyF(SQLAlchemyFactory[Company]):
        class Meta:
            model = Company
            register = False

        name = factory.Sequence(lambda n: f"c{n}")
        department = factory.RelatedFactory(DepartmentF, factory_related_name="company")

        @factory.post_generation
        def audit(obj: Company, create: bool, extracted: Any, **kwargs: Any) -> None:
            assert obj.id is not None  # written early: the key is read
            if extracted:
                raise RuntimeError("audit failed")

    class LateDepartmentF(DepartmentF):
        company = factory.SubFactory(CompanyF)
        name = factory.LazyAttribute(lambda o: o.missing)

    return CompanyF if fail_in == "post_generation" else LateDepartmentF


@pytest.mark.parametrize("fail_in", ["post_generation", "lazy_attribute"])
def test_a_failed_call_leaves_nothing_behind(session: Session, fail_in: str) -> None:
    from dotmac_factoryboy import registry

    from .conftest import table_counts

    failing = failing_factories(fail_in)
    before = table_counts(session)
    with pytest.raises((RuntimeError, AttributeError)):
        failing.create(audit=True) if fail_in == "post_generation" else failing.create()
    session.flush()  # nothing half-built is still pending in the session
    written = {t: n - before[t] for t, n in table_counts(session).items() if n != before[t]}
    assert sum(written.values()) == len(registry.instances)  # what was written early is tracked
    registry.cleanup_all()
    assert table_counts(session) == before
    made = failing_factories("post_generation").create()  # the session is usable
    assert made.id is not None and session.get(type(made), made.id) is made


# -- AUTOCOMMIT connections -----------------------------------------------------------------------


@pytest.fixture
def autocommit_engines(engine: Any) -> Any:
    """This backend's engine made AUTOCOMMIT both ways: by execution option and at create_engine
    (on SQLite only the latter: the test engine's SAVEPOINT recipe emits its own BEGIN)."""
    Base.metadata.create_all(engine)
    by_option = engine.execution_options(isolation_level="AUTOCOMMIT")
    at_creation = create_engine(engine.url, isolation_level="AUTOCOMMIT")
    yield [at_creation] if engine.dialect.name == "sqlite" else [by_option, at_creation]
    at_creation.dispose()
    Base.metadata.drop_all(engine)


def test_create_batch_on_an_autocommit_connection(autocommit_engines: list[Any]) -> None:
    for autocommit in autocommit_engines:
        with Session(autocommit) as session:
            made = counters(session).create_batch(5)
            assert session.scalar(select(func.count()).select_from(Counter)) == 5
            assert [c.count for c in made] == [0] * 5
            taken = made[0].label
            labels = factory.Iterator([f"x{taken}", "y", "z", taken, "w"], cycle=False)
            with pytest.raises(BatchError) as info:
                counters(session).create_batch(5, label=labels)
            assert info.value.index == 3 and "object 3" in str(info.value)
            assert "objects 0 to 2 are written" in str(info.value)
            session.rollback()
            assert session.scalar(select(func.count()).select_from(Counter)) == 8
            session.execute(Counter.__table__.delete())
