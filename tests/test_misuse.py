"""Every misuse of the catalogue (docs page "Bad input") raises its exception with a message that
names what to fix, and writes nothing: every table of every test schema is counted before and
after. The page's table is the one rendered from the messages the calls really raise."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

import dotmac_factoryboy.isp.factories as isp
from dotmac_factoryboy import (
    FactoryRegistry,
    LinkOnly,
    RelationshipDefinition,
    SQLAlchemyFactory,
    customize,
    registry,
    tenant_context,
)
from dotmac_factoryboy.builders import ScenarioBuilder
from dotmac_factoryboy.cli import main
from dotmac_factoryboy.isp.models import Address, Customer, Invoice, Tenant

from .conftest import table_counts
from .misuse_catalogue import CASES, Case, page_table, render, write_page
from .saas_factories import MemberFactory


class LoneBase(DeclarativeBase):
    pass


class Lone(LoneBase):
    __tablename__ = "lone"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


lonely = FactoryRegistry()


class LoneFactory(SQLAlchemyFactory[Lone]):
    """A factory whose registry nobody binds a session to."""

    class Meta:
        model = Lone
        registry = lonely

    name = "alone"


@pytest.fixture
def namespace(session: Session, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """What the catalogue's code runs with: the ISP factories and models, the API, the session."""
    others: list[Session] = []

    def other_session_row() -> Any:
        other = Session(session.get_bind())
        others.append(other)
        with registry.bound(other):
            return isp.CustomerFactory.create()

    def close_others() -> None:
        for other in others:
            other.close()
        others.clear()

    def seed(args: list[str]) -> None:
        result = CliRunner().invoke(main, ["seed", *args])
        if result.exit_code:
            raise SystemExit(f"exit code {result.exit_code}: {result.output.strip()}")

    names = {name: getattr(isp, name) for name in dir(isp) if name.endswith("Factory")}
    names.update(
        session=session,
        customize=customize,
        LinkOnly=LinkOnly,
        tenant_context=tenant_context,
        registry=registry,
        RelationshipDefinition=RelationshipDefinition,
        ScenarioBuilder=ScenarioBuilder,
        MemberFactory=MemberFactory,
        LoneFactory=LoneFactory,
        Lone=Lone,
        Address=Address,
        Customer=Customer,
        Invoice=Invoice,
        Tenant=Tenant,
        async_session=AsyncSession(create_async_engine("sqlite+aiosqlite://")),
        other_session_row=other_session_row,
        seed=seed,
        close_others=close_others,
        scratch_url=f"sqlite:///{tmp_path / 'scratch.db'}",
    )
    saved = vars(isp.CustomerFactory).get("_dotmac_default_tenant")
    try:
        yield names
    finally:
        type.__setattr__(isp.CustomerFactory, "_dotmac_default_tenant", saved)
        close_others()


def attempt(case: Case, names: dict[str, Any], session: Session) -> tuple[BaseException, bool]:
    """Run the case's setup, then its code; (what it raised, whether the tables stayed as they
    were)."""
    exec(case.setup, names)
    session.flush()
    before = table_counts(session)
    raised: BaseException | None = None
    try:
        exec(case.code, names)
    except (Exception, SystemExit) as exc:
        raised = exc
    if raised is None:
        raise AssertionError(f"{case.misuse}: {case.code!r} raised nothing")
    with contextlib.suppress(Exception):
        session.rollback() if not session.is_active else None
    return raised, table_counts(session) == before


@pytest.mark.parametrize("case", CASES, ids=[c.misuse for c in CASES])
def test_every_misuse_raises_its_error_and_writes_nothing(
    case: Case, namespace: dict[str, Any], session: Session
) -> None:
    raised, untouched = attempt(case, namespace, session)
    names = {c.__name__ for c in type(raised).__mro__}
    assert case.raises in names, f"{case.misuse}: raised {type(raised).__name__}: {raised}"
    assert case.fragment in str(raised), f"{case.misuse}: {raised}"
    assert untouched, f"{case.misuse}: rows were written"


def test_the_page_shows_what_the_calls_raise(namespace: dict[str, Any], session: Session) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("the page shows SQLite's run (the messages name no backend)")
    messages = {}
    for case in CASES:
        raised, _ = attempt(case, namespace, session)
        messages[case.misuse] = (type(raised).__name__, str(raised))
        session.rollback()  # each case from a clean transaction, no lock held
        namespace["close_others"]()
    assert len(CASES) >= 40
    if os.environ.get("DOTMAC_WRITE_MISUSE_PAGE") == "1":
        write_page(render(messages))
    assert page_table() == render(messages), (
        "the page is stale: run this test with DOTMAC_WRITE_MISUSE_PAGE=1 to rewrite its table"
    )
