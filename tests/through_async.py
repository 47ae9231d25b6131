"""Runs the sync behaviour tests that matter a second time through the ``*_async`` calls, without
copying them: the test body runs inside ``AsyncSession.run_sync`` on an event loop, its
``session`` is that AsyncSession's ``sync_session`` (the async driver underneath), and each
``create`` / ``create_batch`` / ``cleanup`` / ``cleanup_all`` it calls awaits
``create_async`` / ``create_batch_async`` / ``cleanup_async`` / ``cleanup_all_async`` instead.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory, registry
from dotmac_factoryboy.engines import async_url, sqlite_savepoints

from .saas_factories import saas_registry

MODULES = {
    "test_priority",
    "test_tenancy",
    "test_cleanup",
    "test_bulk",
    "test_core_factory",
    "test_real_schemas",
    "test_real_projects",
    "test_faults",
    "test_rows",
}
"""Tenancy, priority, customize() and LinkOnly, batches, cleanup, failed calls, rows mode."""
THROUGH = ["create", "create_async"]
OWN_THREADS_OR_LOOPS = {
    "test_threads_each_keep_their_tenant",
    "test_asyncio_tasks_each_keep_their_tenant",
    "test_bound_session_is_per_thread_and_per_task",
}
"""Tests that start threads or an event loop of their own: they cannot run inside the bridge's
greenlet (test_async covers tasks, each with its AsyncSession)."""

_AWAITING = ContextVar("awaiting_an_async_call", default=False)


def parametrize(metafunc: pytest.Metafunc) -> None:
    """Every test of ``MODULES`` that takes ``session`` runs once per way of creating."""
    if os.environ.get("DOTMAC_TEST_SYNC_ONLY") == "1":  # CI's lowest-versions run
        return
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    name = metafunc.definition.originalname
    if (
        module in MODULES
        and name not in OWN_THREADS_OR_LOOPS
        and "session" in metafunc.definition._fixtureinfo.argnames
    ):
        metafunc.parametrize("through", THROUGH, indirect=True)


def run_through_async(item: pytest.Function) -> bool:
    """``pytest_pyfunc_call`` for the ``create_async`` runs; ``False`` leaves others to pytest."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("through") != "create_async":
        return False
    arguments = {name: item.funcargs[name] for name in item._fixtureinfo.argnames}
    engine = arguments["session"].get_bind()

    async def main() -> None:
        made = create_async_engine(async_url(engine.url), poolclass=NullPool)
        if made.dialect.name == "sqlite":
            sqlite_savepoints(made.sync_engine)
        try:
            async with AsyncSession(made) as session:

                def body(sync_session: Session) -> None:
                    with registry.bound(session), saas_registry.bound(session), awaited_calls():  # type: ignore[arg-type]
                        item.obj(**{**arguments, "session": sync_session})

                await session.run_sync(body)
        finally:
            await made.dispose()

    asyncio.run(main())
    return True


@contextmanager
def awaited_calls() -> Iterator[None]:
    """Route the sync calls through their ``*_async`` twins for the block."""
    with pytest.MonkeyPatch.context() as patch:
        for cls, name, twin in (
            (SQLAlchemyFactory, "create", "create_async"),
            (SQLAlchemyFactory, "create_batch", "create_batch_async"),
            (SQLAlchemyFactory, "insert_batch", "insert_batch_async"),
            (SQLAlchemyFactory, "cleanup", "cleanup_async"),
            (FactoryRegistry, "cleanup_all", "cleanup_all_async"),
        ):
            original = cls.__dict__[name]
            shim = _awaiting(original, twin)
            patch.setattr(
                cls, name, classmethod(shim) if isinstance(original, classmethod) else shim
            )
        yield


def _awaiting(original: Any, twin: str) -> Callable[..., Any]:
    call = original.__func__ if isinstance(original, classmethod) else original

    def shim(owner: Any, *args: Any, **kwargs: Any) -> Any:
        if _AWAITING.get():  # the twin itself runs the sync call inside the bridge
            return call(owner, *args, **kwargs)
        token = _AWAITING.set(True)
        try:
            return await_only(getattr(owner, twin)(*args, **kwargs))
        finally:
            _AWAITING.reset(token)

    return shim
