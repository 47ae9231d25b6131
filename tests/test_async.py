"""AsyncSession support: every call runs through SQLAlchemy's own sync bridge (``run_sync``), on
aiosqlite always and on PostgreSQL (asyncpg) and MariaDB (aiomysql) when configured.
The schema is the project-management one of ``test_real_schemas`` (a slug-keyed tenant)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from typing import Any

import factory
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from dotmac_factoryboy import LinkOnly, customize, tenant_context
from dotmac_factoryboy.engines import async_url
from dotmac_factoryboy.errors import BatchError, ConfigurationError

from .test_real_schemas import (
    REGISTRY,
    Base,
    Board,
    BoardFactory,
    Card,
    CardFactory,
    Member,
    MemberFactory,
    Workspace,
    WorkspaceFactory,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def schema(engine: Engine) -> Iterator[Engine]:
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    yield engine
    Base.metadata.drop_all(engine)


@pytest.fixture
async def async_engine(schema: Engine) -> AsyncIterator[AsyncEngine]:
    """This backend's database through its async driver."""
    made = create_async_engine(async_url(schema.url))
    yield made
    await made.dispose()


@pytest.fixture
async def db(async_engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """An AsyncSession bound to the schema's registry, in a tracking scope of its own."""
    async with AsyncSession(async_engine, expire_on_commit=False) as session:
        with REGISTRY.bound(session), REGISTRY.scope():  # type: ignore[arg-type]
            yield session


async def count(session: AsyncSession, model: type[Any]) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.anyio
async def test_create_async_keeps_every_rule(db: AsyncSession) -> None:
    board = await BoardFactory.create_async(customize(Member, handle="lead"), name="Roadmap")
    assert board.id is not None and board.owner.handle == "lead"
    assert board.ws == board.owner.ws == board.workspace.slug  # one tenant for the tree
    card = await CardFactory.create_async(LinkOnly(board))
    assert card.board is board and card.ws == board.ws and card.title == "on Roadmap"
    assert await count(db, Workspace) == 1 and await count(db, Member) == 1


@pytest.mark.anyio
async def test_create_batch_async_is_all_or_nothing(db: AsyncSession) -> None:
    board = await BoardFactory.create_async()
    cards = await CardFactory.create_batch_async(5, board=board)
    assert [c.board_id for c in cards] == [board.id] * 5
    with pytest.raises(BatchError) as info:
        await CardFactory.create_batch_async(
            4, board=board, title=factory.Iterator(["a", "b", None, "c"])
        )
    assert info.value.index == 2
    assert await count(db, Card) == 5  # nothing of the failed batch
    assert (await CardFactory.create_async(board=board)).number is not None  # usable


@pytest.mark.anyio
async def test_sync_create_with_only_an_async_session_names_create_async(
    db: AsyncSession,
) -> None:
    with pytest.raises(ConfigurationError, match=r"await MemberFactory\.create_async"):
        MemberFactory.create()
    assert await count(db, Member) == 0
    assert MemberFactory.build().ws is not None  # build() needs no session


@pytest.mark.anyio
async def test_cleanup_async_removes_exactly_the_tracked_rows(db: AsyncSession) -> None:
    foreign = Workspace(slug="not-ours", title="kept")
    db.add(foreign)
    await db.commit()
    await CardFactory.create_batch_async(3)
    await db.commit()
    report = await REGISTRY.cleanup_all_async()
    assert report.deleted["pm_cards"] == 3
    assert [await count(db, m) for m in (Card, Board, Member)] == [0, 0, 0]
    assert await count(db, Workspace) == 1
    member = await MemberFactory.create_async()
    await db.commit()
    await MemberFactory.cleanup_async()
    assert await count(db, Member) == 0 and member.id is not None


@pytest.mark.anyio
async def test_an_async_session_factory_and_a_sync_session(
    async_engine: AsyncEngine, schema: Engine
) -> None:
    async def open_session() -> AsyncSession:
        return session

    session = AsyncSession(async_engine, expire_on_commit=False)
    made = type(
        "AsyncMadeWorkspaceFactory",
        (WorkspaceFactory,),
        {"Meta": type("Meta", (), {"sqlalchemy_session_factory": open_session, "register": False})},
    )
    try:
        workspace = await made.create_async()
        assert await count(session, Workspace) == 1 and workspace.slug.startswith("ws-")
        await session.commit()
    finally:
        await session.close()
    with Session(schema) as sync_session, REGISTRY.bound(sync_session):
        assert (await WorkspaceFactory.create_async()).slug  # a sync session: it just runs
        assert sync_session.scalar(select(func.count()).select_from(Workspace)) == 2


@pytest.mark.anyio
async def test_tasks_each_keep_their_tenant(async_engine: AsyncEngine) -> None:
    async def work(n: int) -> tuple[str, list[str]]:
        async with AsyncSession(async_engine, expire_on_commit=False) as session:
            with REGISTRY.bound(session), REGISTRY.scope():  # type: ignore[arg-type]
                home = await WorkspaceFactory.create_async(slug=f"task-{n}")
                with tenant_context(home):
                    cards = await CardFactory.create_batch_async(3)
                    more = await CardFactory.create_async()
                await session.commit()
                seen = (home.slug, sorted({c.ws for c in [*cards, more]}))
                assert (
                    len(REGISTRY.instances) == 1 + 4 * 3
                )  # the workspace, 4 x (card, board, member)
                await REGISTRY.cleanup_all_async()
                return seen

    results = await asyncio.gather(*(work(n) for n in range(8)))
    assert all(ws == [slug] for slug, ws in results)
    async with AsyncSession(async_engine) as session:  # every task cleaned up its own rows
        assert [await count(session, m) for m in (Card, Board, Member, Workspace)] == [0] * 4


@pytest.mark.anyio
async def test_a_task_cancelled_mid_batch_leaves_nothing(db: AsyncSession) -> None:
    board = await BoardFactory.create_async()
    await db.commit()

    made = itertools.count()

    def cancel_at_the_seventh() -> str:
        n = next(made)
        if n == 6:  # the cancellation lands at the next statement the batch awaits
            current = asyncio.current_task()
            assert current is not None
            current.cancel()
        return f"card {n}"

    cards = CardFactory._meta.batch_chunk_size
    CardFactory._meta.batch_chunk_size = (
        4  # written in chunks: rows are in the database when cancelled
    )
    try:
        task = asyncio.ensure_future(
            CardFactory.create_batch_async(
                10, board=board, title=factory.LazyFunction(cancel_at_the_seventh)
            )
        )
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        CardFactory._meta.batch_chunk_size = cards
    assert await count(db, Card) == 0  # the 4 written before the cancellation were undone
    assert (
        len(REGISTRY.instances) == 3
    )  # the board, its member, its workspace: nothing of the batch
    card = await CardFactory.create_async(board=board)  # the session is usable
    await db.commit()
    assert await count(db, Card) == 1 and card.board_id == board.id
