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
    assert table_counts(session) == before  # what was written early was rolled back
    assert registry.instances == []  # and nothing of the call is tracked
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


# -- the plugin in existing projects ------------------------------------------------------------

MODELS = """
import factory
from sqlalchemy import String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from dotmac_factoryboy import SQLAlchemyFactory

class Base(DeclarativeBase):
    pass

class Guild(Base):
    __tablename__ = "guilds"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))

class Client(Base):
    __tablename__ = "clients"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))

class GuildFactory(SQLAlchemyFactory[Guild]):
    class Meta:
        model = Guild
    name = factory.Sequence(lambda n: f"guild{n}")

class ClientFactory(SQLAlchemyFactory[Client]):
    class Meta:
        model = Client
    name = "from the factory"
"""


def test_generated_fixtures_never_replace_fixtures_defined_elsewhere(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        app_models=MODELS,
        app_fixtures="""
            import pytest
            from app_models import GuildFactory  # imported by a pytest_plugins module

            @pytest.fixture
            def guild():
                return "the application's guild"
        """,
        third_party_plugin="""
            import pytest

            @pytest.fixture
            def client():
                return "the plugin's client"
        """,
        conftest="""
            import pytest
            pytest_plugins = ["app_fixtures"]

            @pytest.fixture
            def guild_factory():
                return "the conftest's factory fixture"
        """,
        test_app="""
            def test_others_fixtures_win(guild, client, guild_factory):
                assert guild == "the application's guild"
                assert client == "the plugin's client"
                assert guild_factory == "the conftest's factory fixture"

            def test_the_rest_is_generated(client_factory, guild__name):
                assert client_factory.build().name == "from the factory"
        """,
    )
    pytester.makeini("[pytest]\nfactory_metadata = app_models:Base\nfactory_modules = app_models\n")
    result = pytester.runpytest_subprocess("-p", "third_party_plugin", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


def console_script(name: str, *args: str, cwd: Path) -> Any:
    """A console script of this environment run as a user's shell runs it: no PYTHONPATH, so
    only what the script itself puts on sys.path is importable."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    command = [str(Path(sys.executable).parent / name), *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def test_factory_modules_import_from_the_rootdir_under_plain_pytest(
    pytester: pytest.Pytester,
) -> None:

    pytester.makepyfile(
        app_models=MODELS,
        test_app="def test_guild(guild):\n    assert guild.id is not None\n",
    )
    pytester.makeini("[pytest]\nfactory_metadata = app_models:Base\nfactory_modules = app_models\n")
    run = console_script("pytest", "-p", "no:cacheprovider", "-q", cwd=pytester.path)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 passed" in run.stdout


@pytest.mark.parametrize(
    ("ini", "named"),
    [
        ("factory_modules = app_modles\n", "factory_modules: cannot import 'app_modles'"),
        ("factory_metadata = app_models:Bsae\n", "factory_metadata:"),
    ],
)
def test_a_bad_setting_is_one_usage_error_at_start_up(
    pytester: pytest.Pytester, ini: str, named: str
) -> None:
    pytester.makepyfile(
        app_models=MODELS,
        test_app="".join(f"def test_{n}(guild):\n    pass\n\n" for n in range(11)),
    )
    pytester.makeini(f"[pytest]\n{ini}")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    errors = [line for line in result.stderr.lines if named in line]
    assert len(errors) == 1, result.stderr.str()
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_the_cli_imports_a_project_module_from_the_current_directory(tmp_path: Path) -> None:
    (tmp_path / "clinic_app.py").write_text(MODELS)
    run = console_script("dotmac-factoryboy", "graph", "--factories", "clinic_app", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "GuildFactory" in run.stdout and "ClientFactory" in run.stdout


@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_a_server_url_whose_database_is_missing_is_one_error(
    pytester: pytest.Pytester, backend: str
) -> None:
    from sqlalchemy import make_url

    from .backends import server_url

    missing = make_url(server_url(backend)).set(database="dotmac_no_such_base")
    pytester.makepyfile(
        app_models=MODELS,
        test_app="".join(f"def test_{n}(guild):\n    pass\n\n" for n in range(11)),
    )
    pytester.makeini("[pytest]\nfactory_metadata = app_models:Base\nfactory_modules = app_models\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--factory-db-url={missing.render_as_string(False)}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    output = result.stdout.str() + result.stderr.str()
    assert output.count("cannot prepare the test database") == 1, output
    assert "<name> must exist" in output and "Traceback" not in output


# -- output people read -------------------------------------------------------------------------


def test_a_factorys_cleanup_names_the_factory_whose_rows_block_it(session: Session) -> None:
    from dotmac_factoryboy.errors import CleanupError

    from .core_factories import CompanyFactory, DepartmentFactory

    department = DepartmentFactory.create()
    key = department.id
    with pytest.raises(CleanupError) as info:
        CompanyFactory.cleanup()
    message = str(info.value)
    assert "core_departments (rows DepartmentFactory created" in message
    assert "did not create" not in message
    DepartmentFactory.cleanup()
    CompanyFactory.cleanup()
    assert session.get(type(department), key) is None


def test_lint_in_a_ci_log_is_one_line_per_distinct_failure() -> None:
    from dotmac_factoryboy.linting import LintFailure, failure_lines

    name = "NullLabelSprocketFactoryWithALongName"
    failures = [
        LintFailure(name, traits, "IntegrityError", "NOT NULL constraint failed: label")
        for traits in [(), ("shiny",), ("shiny", "big")]
    ] + [LintFailure(name, ("big",), "ValueError", "too big")]
    lines = failure_lines(failures)
    assert lines == [
        f"FAIL {name} [no traits | shiny | shiny+big] (3 calls): IntegrityError: "
        "NOT NULL constraint failed: label",
        f"FAIL {name} [big]: ValueError: too big",
    ]


def test_no_reproduce_hint_after_a_lost_connection(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        app_models=MODELS,
        test_app="""
            from sqlalchemy.exc import OperationalError

            def test_connection_refused():
                raise OperationalError("SELECT 1", {}, Exception("connection refused"))

            def test_plain_failure(guild_factory):
                assert guild_factory.build().name == "nope"
        """,
    )
    pytester.makeini("[pytest]\nfactory_metadata = app_models:Base\nfactory_modules = app_models\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()
    assert output.count("reproduce with") == 1
    assert "test_app.py::test_plain_failure' --factory-seed" in output


# -- docs that are true ---------------------------------------------------------------------------


def test_the_errors_page_lists_every_error_and_its_bases() -> None:
    import re

    from dotmac_factoryboy import errors

    page = (Path(__file__).parent.parent / "docs" / "pages" / "errors.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \|([^|]*)\|", page, flags=re.MULTILINE)
    listed = {name: set(re.findall(r"`(\w+)`", also)) for name, also in rows}
    classes = {
        name: value
        for name, value in vars(errors).items()
        if isinstance(value, type)
        and issubclass(value, errors.DotmacFactoryError)
        and value is not errors.DotmacFactoryError
    }
    assert set(listed) == set(classes)
    for name, cls in classes.items():
        bases = {b.__name__ for b in cls.__bases__} - {"DotmacFactoryError"}
        assert listed[name] == bases, name


def test_the_recipes_page_is_one_project_pytest_collects_at_its_root(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    page = (Path(__file__).parent.parent / "docs" / "pages" / "recipes.md").read_text()
    blocks = re.findall(r"```(?:python|ini|toml)\n# ([\w./-]+)\n(.*?)```", page, flags=re.DOTALL)
    assert len(blocks) > 10
    for name, body in blocks:
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "error" not in run.stdout.lower()


def test_lint_never_touches_a_session_that_needs_an_application_context(tmp_path: Path) -> None:
    from sqlalchemy.orm import scoped_session, sessionmaker

    def outside_app_context() -> object:
        raise RuntimeError("Working outside of application context.")

    flask_style = scoped_session(sessionmaker(), scopefunc=outside_app_context)
    linter = create_engine(f"sqlite:///{tmp_path / 'lint.db'}")
    Base.metadata.create_all(linter)
    with Session(linter) as lint_session:
        report = lint(session=lint_session, factories=[counters(flask_style)])  # type: ignore[arg-type]
    assert report.ok, str(report)
    assert report.checked == 1
