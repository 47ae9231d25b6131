"""The plan on a real project's schema (a project-management SaaS of its own): a Workspace tenant
keyed by a string slug behind columns named ``ws``, a self-referencing project tree, tasks with a
composite primary key and notes pointing at them by a composite foreign key."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import factory
import pytest
from sqlalchemy import Engine, ForeignKey, ForeignKeyConstraint, String, func, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from dotmac_factoryboy import (
    FactoryRegistry,
    TenantIsolatedFactory,
    allow_cross_tenant,
    customize,
    tenant_context,
)
from dotmac_factoryboy.errors import (
    LinkOnlyError,
    SkippedPlaceError,
    TenantContextError,
    TenantIsolationError,
)


class Base(DeclarativeBase):
    pass


class Workspace(Base):
    __tablename__ = "pm_workspaces"
    slug: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(String(80))


class Member(Base):
    __tablename__ = "pm_members"
    id: Mapped[int] = mapped_column(primary_key=True)
    handle: Mapped[str] = mapped_column(String(40))
    email: Mapped[str] = mapped_column(String(120))
    ws: Mapped[str] = mapped_column(ForeignKey("pm_workspaces.slug"))
    workspace: Mapped[Workspace] = relationship()


class Board(Base):
    __tablename__ = "pm_boards"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    ws: Mapped[str] = mapped_column(ForeignKey("pm_workspaces.slug"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("pm_members.id"))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("pm_boards.id"))
    workspace: Mapped[Workspace] = relationship()
    owner: Mapped[Member] = relationship()
    parent: Mapped[Board | None] = relationship(remote_side=[id])


class Card(Base):
    __tablename__ = "pm_cards"
    board_id: Mapped[int] = mapped_column(ForeignKey("pm_boards.id"), primary_key=True)
    number: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    ws: Mapped[str] = mapped_column(ForeignKey("pm_workspaces.slug"))
    board: Mapped[Board] = relationship()


class Comment(Base):
    __tablename__ = "pm_comments"
    id: Mapped[int] = mapped_column(primary_key=True)
    body: Mapped[str] = mapped_column(String(120))
    ws: Mapped[str] = mapped_column(ForeignKey("pm_workspaces.slug"))
    board_id: Mapped[int] = mapped_column()
    card_number: Mapped[int] = mapped_column()
    card: Mapped[Card] = relationship()
    __table_args__ = (
        ForeignKeyConstraint(["board_id", "card_number"], ["pm_cards.board_id", "pm_cards.number"]),
    )


REGISTRY = FactoryRegistry()


class WorkspaceFactory(TenantIsolatedFactory[Workspace]):
    class Meta:
        model = Workspace
        registry = REGISTRY

    slug = factory.Sequence(lambda n: f"ws-{n:04d}")
    title = factory.Faker("company")


class Scoped(TenantIsolatedFactory[Any]):
    class Meta:
        abstract = True
        registry = REGISTRY
        tenant_field = "ws"


class MemberFactory(Scoped):
    class Meta:
        model = Member

    workspace = factory.SubFactory(WorkspaceFactory)
    handle = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.handle}@{o.ws}.test")


class SlugReadingMemberFactory(MemberFactory):
    class Meta:
        model = Member

    email = factory.LazyAttribute(lambda o: f"{o.handle}@{o.workspace.slug}.test")


class BoardFactory(Scoped):
    class Meta:
        model = Board

    class Params:
        child = factory.Trait(parent=factory.SubFactory("tests.test_real_schemas.BoardFactory"))

    workspace = factory.SubFactory(WorkspaceFactory)
    name = factory.Sequence(lambda n: f"board {n}")
    owner = factory.SubFactory(MemberFactory)
    parent = None


class CardFactory(Scoped):
    class Meta:
        model = Card

    board = factory.SubFactory(BoardFactory)
    number = factory.Sequence(int)
    title = factory.LazyAttribute(lambda o: f"on {o.board.name}")


class CommentFactory(Scoped):
    class Meta:
        model = Comment

    card = factory.SubFactory(CardFactory)
    body = "hi"


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """This backend's database with the schema of this module, bound to its registry."""
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    session = Session(engine)
    try:
        with REGISTRY.bound(session), REGISTRY.scope():
            yield session
    finally:
        session.rollback()
        session.close()
        Base.metadata.drop_all(engine)


def counts(session: Session) -> dict[str, int]:
    return {
        t.name: int(session.scalar(select(func.count()).select_from(t)) or 0)
        for t in Base.metadata.sorted_tables
    }


@pytest.mark.parametrize("factory_cls", [MemberFactory, SlugReadingMemberFactory])
@pytest.mark.parametrize("strategy", ["build", "create"])
def test_declarations_read_the_tenant_both_ways(
    db: Session, factory_cls: Any, strategy: str
) -> None:
    member = getattr(factory_cls, strategy)()
    assert member.ws is not None and member.ws.startswith("ws-")
    assert member.email == f"{member.handle}@{member.ws}.test"
    assert member.workspace.slug == member.ws


@pytest.mark.parametrize("strategy", ["build", "create"])
def test_the_tenant_column_is_readable_when_the_tenant_row_is_given(
    db: Session, strategy: str
) -> None:
    home = WorkspaceFactory.create()
    member = getattr(MemberFactory, strategy)(workspace=home)
    assert member.email == f"{member.handle}@{home.slug}.test" and member.ws == home.slug


def test_a_foreign_key_id_links_the_row_declarations_read(db: Session) -> None:
    board = BoardFactory.create(name="Roadmap")
    card = CardFactory.create(board_id=board.id)
    assert card.board is board and card.title == "on Roadmap"
    assert counts(db)["pm_boards"] == 1 and card.ws == board.ws


def test_keys_that_point_at_no_row_are_refused_before_any_write(db: Session) -> None:
    before = counts(db)
    with pytest.raises(LinkOnlyError, match=r"owner_id=99999 .* points at no Member"):
        BoardFactory.create(owner_id=99999)
    assert counts(db) == before


def test_tenant_keys_that_point_at_no_row_are_refused_on_servers(db: Session) -> None:
    if db.get_bind().dialect.name == "sqlite":
        pytest.skip("on SQLite the tenant's foreign key refuses it at INSERT (no read first)")
    before = counts(db)
    with pytest.raises(TenantContextError, match="'does-not-exist'"):
        CardFactory.create(ws="does-not-exist")
    with tenant_context("nope"), pytest.raises(TenantContextError, match="'nope'"):
        CommentFactory.create()
    MemberFactory.ws = "zzz"
    try:
        with pytest.raises(TenantContextError, match=r"MemberFactory\.tenant_id"):
            MemberFactory.create()
    finally:
        MemberFactory.ws = None
    assert counts(db) == before


def test_the_tenant_field_name_sets_the_factory_default(db: Session) -> None:
    home = WorkspaceFactory.create()
    MemberFactory.ws = home.slug
    try:
        assert MemberFactory.ws == MemberFactory.tenant_id == home.slug
        assert MemberFactory.create().ws == home.slug
    finally:
        MemberFactory.ws = None
    assert MemberFactory.create().ws != home.slug


def test_rows_of_another_tenant_inside_a_tenant_context_are_refused(db: Session) -> None:
    a, b = WorkspaceFactory.create(), WorkspaceFactory.create()
    board_a = BoardFactory.create(workspace=a)
    before = counts(db)
    with tenant_context(b), pytest.raises(TenantIsolationError, match="tenant_context"):
        CardFactory.create(board=board_a)
    assert counts(db) == before
    with tenant_context(b), allow_cross_tenant():
        assert CardFactory.create(board=board_a).ws == a.slug
    with tenant_context(b):
        assert CardFactory.create(board=board_a, ws=a.slug).ws == a.slug  # named explicitly
        assert CardFactory.create(board=BoardFactory.create()).ws == b.slug


def test_a_self_reference_is_followed_as_deep_as_the_call_addresses(db: Session) -> None:
    plan = BoardFactory.explain(child=True, parent__owner__handle="x")
    assert plan.place("parent.owner").fields["handle"].value == "x"
    assert plan.place("parent").stopped == ()  # its parent is None: nothing repeats
    twice = BoardFactory.explain(child=True, parent__child=True)
    assert twice.place("parent").stopped == ("parent",)  # the repeat nothing addresses
    assert "not followed below this repeat of BoardFactory: parent" in repr(twice)
    deep = BoardFactory.explain(child=True, parent__child=True, parent__parent__name="deep")
    assert deep.place("parent.parent").fields["name"].value == "deep"
    assert deep.place("parent.parent.owner").model is Member
    routed = BoardFactory.explain(customize(Member, path="parent.owner", handle="y"), child=True)
    assert routed.place("parent.owner").fields["handle"].value == "y"
    board = BoardFactory.create(customize(Member, path="parent.owner", handle="y"), child=True)
    assert board.parent is not None and board.parent.owner.handle == "y"
    assert board.parent.parent is None
    nested = BoardFactory.create(child=True, parent__child=True, parent__parent__name="deep")
    assert nested.parent.parent.name == "deep"  # type: ignore[union-attr]
    assert nested.parent.parent.owner.email.endswith(f"@{nested.ws}.test")  # type: ignore[union-attr]


def test_a_composite_foreign_key_links_the_row(db: Session) -> None:
    card = CardFactory.create()
    comment = CommentFactory.create(board_id=card.board_id, card_number=card.number)
    assert comment.card is card and counts(db)["pm_cards"] == 1
    with pytest.raises(LinkOnlyError, match="card_number="):
        CommentFactory.create(board_id=card.board_id)
    with pytest.raises(LinkOnlyError, match="points at no Card"):
        CommentFactory.create(board_id=card.board_id, card_number=card.number + 100)
    assert counts(db)["pm_comments"] == 1


def test_reading_a_place_the_call_does_not_build_names_it_and_the_fix() -> None:
    with pytest.raises(SkippedPlaceError) as info:
        CardFactory.build(board_id=5)  # no row loaded under build(): the board place is skipped
    message = str(info.value)
    assert "CardFactory.board is not built" in message and "board.name" in message
    assert "customize(Model, path=...)" in message and "board=row" in message
    assert isinstance(info.value, AttributeError)
