"""The catalogue of misuses on the docs' "Bad input" page: each case is the code a user writes,
the exception it must raise and a fragment its message must contain.

``test_misuse`` runs every case on every backend (nothing may be written: every table's rows are
counted before and after) and checks that the page's table is the one this module renders from
the messages the calls really raise; with ``DOTMAC_WRITE_MISUSE_PAGE=1`` it rewrites the table.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from .saas_factories import MemberFactory

PAGE = Path(__file__).parent.parent / "docs" / "pages" / "misuse.md"
BEGIN, END = "<!-- catalogue: begin -->", "<!-- catalogue: end -->"


@dataclass(frozen=True)
class Case:
    misuse: str
    code: str
    raises: str
    fragment: str
    setup: str = ""


CASES = [
    # -- fields and values
    Case("unknown field", 'CustomerFactory.create(nmae="Ada")', "UnknownFieldError", "nmae"),
    Case(
        "unknown field of a nested place",
        'ServiceFactory.create(customer__nmae="Ada")',
        "UnknownFieldError",
        "'nmae' (at 'customer' under ServiceFactory)",
    ),
    Case(
        "empty part in a path",
        'ServiceFactory.create(customer__="Ada")',
        "UnknownFieldError",
        "customer__",
    ),
    Case("unknown trait", "CustomerFactory.create(vip=True)", "UnknownFieldError", "vip"),
    Case(
        "read-only property",
        'MemberFactory.create(display="x")',
        "FieldValueError",
        "display",
    ),
    Case(
        "relationship given a value of the wrong kind",
        'ServiceFactory.create(customer="Acme")',
        "FieldValueError",
        "customer",
    ),
    Case("negative batch size", "CustomerFactory.create_batch(-1)", "BatchSizeError", "-1"),
    Case(
        "batch size given twice",
        "CustomerFactory.create_batch(2, count=3)",
        "BatchSizeError",
        "count",
    ),
    Case(
        "batch size of the wrong type",
        'CustomerFactory.create_batch("3")',
        "BatchSizeError",
        "str",
    ),
    # -- customize()
    Case(
        "customize() matching no place",
        'ServiceFactory.create(customize(Invoice, status="paid"))',
        "CustomizationError",
        "matches no place",
    ),
    Case(
        "ambiguous customize()",
        'CustomerFactory.create(customize(Address, city="Oslo"), with_billing_address=True)',
        "CustomizationError",
        "path=",
    ),
    Case(
        "customize() path that is not a place",
        'CustomerFactory.create(customize(Address, path="home", city="Oslo"))',
        "CustomizationError",
        "home",
    ),
    Case(
        "two customizations of one place",
        'InvoiceFactory.create(customize(Customer, name="A"), customize(Customer, email="a@b.c"))',
        "CustomizationError",
        "two customizations",
    ),
    Case(
        "customize() clashing with a keyword",
        'InvoiceFactory.create(customize(Customer, name="A"), billing_account__customer__name="B")',
        "CustomizationError",
        "name",
    ),
    Case(
        "customize() of an unknown field",
        'ServiceFactory.create(customize(Customer, nmae="A"))',
        "UnknownFieldError",
        "nmae",
    ),
    # -- LinkOnly and foreign keys
    Case(
        "LinkOnly of an unsaved row",
        "ServiceFactory.create(customer=LinkOnly(CustomerFactory.build()))",
        "LinkOnlyError",
        "not yet in the database",
    ),
    Case(
        "LinkOnly of a deleted row",
        "ServiceFactory.create(LinkOnly(gone))",
        "LinkOnlyError",
        "deleted",
        "gone = CustomerFactory.create(); session.delete(gone); session.flush()",
    ),
    Case(
        "LinkOnly of the wrong model",
        "ServiceFactory.create(customer=LinkOnly(address))",
        "LinkOnlyError",
        "Customer",
        "address = AddressFactory.create()",
    ),
    Case(
        "LinkOnly at the root",
        "CustomerFactory.create(LinkOnly(customer))",
        "LinkOnlyError",
        "root",
        "customer = CustomerFactory.create()",
    ),
    Case(
        "LinkOnly of another open session's row",
        "ServiceFactory.create(LinkOnly(theirs))",
        "LinkOnlyError",
        "session",
        "theirs = other_session_row()",
    ),
    Case(
        "a place linked twice",
        "ServiceFactory.create(LinkOnly(one), customer=two)",
        "CustomizationError",
        "linked to an existing instance",
        "one, two = CustomerFactory.create(), CustomerFactory.create()",
    ),
    Case(
        "an override inside a linked place",
        'ServiceFactory.create(customer=LinkOnly(customer), customer__name="x")',
        "CustomizationError",
        "customer__name",
        "customer = CustomerFactory.create()",
    ),
    Case(
        "customize() of a linked place",
        'ServiceFactory.create(LinkOnly(customer), customize(Customer, name="x"))',
        "CustomizationError",
        "linked",
        "customer = CustomerFactory.create()",
    ),
    Case(
        "a foreign-key id that points at no row",
        "ServiceFactory.create(customer_id=987654)",
        "LinkOnlyError",
        "987654",
    ),
    # -- tenants
    Case(
        "a row of another tenant inside tenant_context()",
        "with tenant_context(mine):\n    ServiceFactory.create(LinkOnly(theirs))",
        "TenantIsolationError",
        "tenant",
        "mine, theirs = TenantFactory.create(), CustomerFactory.create()",
    ),
    Case(
        "conflicting tenant sources",
        "ServiceFactory.create(LinkOnly(customer), tenant=other)",
        "TenantIsolationError",
        "tenant",
        "customer, other = CustomerFactory.create(), TenantFactory.create()",
    ),
    Case(
        "customizing the tenant place of a tree that has a tenant",
        'with tenant_context(mine):\n    CustomerFactory.create(customize(Tenant, name="x"))',
        "TenantIsolationError",
        "the tenant place 'tenant' is customized",
        "mine = TenantFactory.create()",
    ),
    Case(
        "tenant_context(None)",
        "with tenant_context(None):\n    pass",
        "TenantContextError",
        "None",
    ),
    Case(
        "tenant_context() of a row that is not a tenant",
        "with tenant_context(customer):\n    pass",
        "TenantContextError",
        "Customer",
        "customer = CustomerFactory.create()",
    ),
    Case(
        "a factory-level tenant that is not a tenant",
        "CustomerFactory.tenant_id = address",
        "TenantContextError",
        "Address",
        "address = AddressFactory.create()",
    ),
    # -- sessions
    Case(
        "no session",
        "LoneFactory.create()",
        "ConfigurationError",
        "has no SQLAlchemy session",
    ),
    Case(
        "an AsyncSession in sync code",
        "with registry.bound(async_session):\n    CustomerFactory.create()",
        "ConfigurationError",
        "create_async",
    ),
    Case(
        "binding something that is not a session",
        'registry.bind("postgresql://db")',
        "ConfigurationError",
        "not a SQLAlchemy Session",
    ),
    # -- registry, relationships, scenarios
    Case(
        "unknown factory name",
        'registry.get_factory("custmer_factory")',
        "FactoryNotFoundError",
        "customer_factory",
    ),
    Case(
        "no factory for a model",
        "registry.factory_for(Lone)",
        "FactoryNotFoundError",
        "Lone",
    ),
    Case(
        "relationship definition naming an unregistered factory",
        'registry.register_relationship(RelationshipDefinition("x", "customer_factory", '
        '"nope_factory", "one_to_many", "customer_id"))',
        "RelationshipError",
        "'nope_factory' is not registered",
    ),
    Case(
        "relationship definition naming a missing column",
        'registry.register_relationship(RelationshipDefinition("y", "customer_factory", '
        '"service_factory", "one_to_many", "owner_id"))',
        "RelationshipError",
        "owner_id",
    ),
    Case(
        "scenario steps in a cycle",
        'ScenarioBuilder("loop", registry).add_step("a", "customer_factory", dependencies=["b"])'
        '.add_step("b", "customer_factory", {"x": "${a}"}).build()',
        "ScenarioError",
        "cycle",
    ),
    Case(
        "scenario step reading an unknown step",
        'ScenarioBuilder("s", registry).add_step("a", "customer_factory", {"x": "${nope.id}"})'
        ".build()",
        "ScenarioError",
        "unknown step",
    ),
    # -- rows mode
    Case(
        "insert_batch of a factory with a post-generation declaration",
        "InvoiceFactory.insert_batch(3, paid=True)",
        "RowsModeError",
        "create_batch",
    ),
    Case(
        "insert_batch setting a one-to-many collection",
        "CustomerFactory.insert_batch(2, services=[service])",
        "RowsModeError",
        "collection",
        "service = ServiceFactory.create()",
    ),
    # -- the command line
    Case(
        "seed --shard out of range",
        'seed(["--url", scratch_url, "--shard", "2/2"])',
        "SystemExit",
        "K must be at least 0",
    ),
    Case(
        "seed --jobs above the tenants",
        'seed(["--url", scratch_url, "--tenants", "2", "--jobs", "3"])',
        "SystemExit",
        "--jobs 3",
    ),
    Case(
        "seed --factories naming no module",
        'seed(["--url", scratch_url, "--factories", "no_such_module"])',
        "SystemExit",
        "no_such_module",
    ),
    Case(
        "seed --shard with --append",
        'seed(["--url", scratch_url, "--shard", "0/2", "--append"])',
        "SystemExit",
        "use one",
    ),
]


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


@contextlib.contextmanager
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


def first_line(message: str) -> str:
    """The message's first line, as the table shows it."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    # the models a message lists depend on which test modules were imported: shown as "..."
    line = re.sub(r"\(tenant models: [^)]*\)", "(tenant models: ...)", line)
    return line.replace("|", "\\|")


def render(messages: dict[str, tuple[str, str]]) -> str:
    """The page's table from ``misuse -> (exception, message)`` as the calls raised them."""
    lines = [
        "| # | misuse | code | raises | message (first line) |",
        "| ---: | --- | --- | --- | --- |",
    ]
    for number, case in enumerate(CASES, 1):
        raised, message = messages[case.misuse]
        code = " ".join(part.strip() for part in case.code.splitlines()).replace("|", "\\|")
        if raised == "SystemExit":  # the command line: its exit code and the line it printed
            status, _, message = message.partition(": ")
            shown = status
        else:
            shown = f"`{raised}`"
        lines.append(f"| {number} | {case.misuse} | `{code}` | {shown} | {first_line(message)} |")
    return "\n".join(lines)


def write_page(table: str) -> None:
    text = PAGE.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    PAGE.write_text(text[:start] + "\n" + table + "\n" + text[end:])


def page_table() -> str:
    text = PAGE.read_text()
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip()
