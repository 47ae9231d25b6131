"""Developer sessions: tests per backend, lint, types, docs and benchmarks."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "docs"]
POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root@127.0.0.1:3306/test"


def _pytest(session: nox.Session, **env: str) -> None:
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs, env=env)


@nox.session
def tests(session: nox.Session) -> None:
    """The suite on SQLite (server backends skip unless their URL is set)."""
    _pytest(session)


@nox.session
def tests_postgres(session: nox.Session) -> None:
    """The suite with PostgreSQL required."""
    url = os.environ.get("DOTMAC_TEST_POSTGRES_URL", POSTGRES_URL)
    _pytest(session, DOTMAC_TEST_POSTGRES_URL=url, DOTMAC_REQUIRE_DATABASES="1")


@nox.session
def tests_mariadb(session: nox.Session) -> None:
    """The suite with MariaDB required."""
    url = os.environ.get("DOTMAC_TEST_MARIADB_URL", MARIADB_URL)
    _pytest(session, DOTMAC_TEST_MARIADB_URL=url, DOTMAC_REQUIRE_DATABASES="1")


@nox.session(python=["3.10"])
def tests_lowest(session: nox.Session) -> None:
    """The suite on the oldest Python against the lowest versions pyproject.toml allows."""
    session.install("-c", "constraints/lowest.txt", "-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def factory_boy_suite(session: nox.Session) -> None:
    """factory_boy's own test suite (from its sdist) with every factory a subclass of ours."""
    session.install("-e", ".[test]")
    session.run("python", "tests/factory_boy_suite/run.py", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and format."""
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on the package and the typing samples."""
    session.install("-e", ".[dev]")
    session.run("mypy")
    session.run("mypy", "--strict", "tests/typing_samples.py")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the mkdocs site with --strict."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-f", "docs/mkdocs.yml")


@nox.session
def bench(session: nox.Session) -> None:
    """Run the benchmarks side by side and rewrite their tables (benchmarks/*.md, results.json).

    PostgreSQL and MariaDB cases run when DOTMAC_TEST_POSTGRES_URL / DOTMAC_TEST_MARIADB_URL are
    set; `nox -s bench -- --scale 25000 50000 100000` adds the PostgreSQL scale run.
    """
    session.install("-e", ".[bench,test]")  # the test extra brings the database drivers
    session.run("python", "benchmarks/bench_create.py")
    session.run("python", "benchmarks/bench_bulk.py", *session.posargs)
    session.run("python", "benchmarks/bench_cleanup.py")
    session.run("python", "benchmarks/bench_seed.py")
    session.run("python", "benchmarks/bench_async.py")
    session.run("python", "benchmarks/bench_profile.py")
    session.run("python", "benchmarks/bench_suite.py", "--write")
