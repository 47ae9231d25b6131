"""Every misuse of the catalogue (docs page "Bad input") raises its exception with a message that
names what to fix, and writes nothing: every table of every test schema is counted before and
after. The page's table is the one rendered from the messages the calls really raise."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from .misuse_catalogue import CASES, Case, attempt, namespace, page_table, render, write_page


@pytest.fixture
def names(session: Session, tmp_path: Path) -> Iterator[dict[str, Any]]:
    with namespace(session, tmp_path) as names:
        yield names


@pytest.mark.parametrize("case", CASES, ids=[c.misuse for c in CASES])
def test_every_misuse_raises_its_error_and_writes_nothing(
    case: Case, names: dict[str, Any], session: Session
) -> None:
    raised, untouched = attempt(case, names, session)
    names = {c.__name__ for c in type(raised).__mro__}
    assert case.raises in names, f"{case.misuse}: raised {type(raised).__name__}: {raised}"
    assert case.fragment in str(raised), f"{case.misuse}: {raised}"
    assert untouched, f"{case.misuse}: rows were written"


def test_the_page_shows_what_the_calls_raise(names: dict[str, Any], session: Session) -> None:
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("the page shows SQLite's run (the messages name no backend)")
    messages = {}
    for case in CASES:
        raised, _ = attempt(case, names, session)
        messages[case.misuse] = (type(raised).__name__, str(raised))
        session.rollback()  # each case from a clean transaction, no lock held
        names["close_others"]()
    assert len(CASES) >= 40
    if os.environ.get("DOTMAC_WRITE_MISUSE_PAGE") == "1":
        write_page(render(messages))
    assert page_table() == render(messages), (
        "the page is stale: run this test with DOTMAC_WRITE_MISUSE_PAGE=1 to rewrite its table"
    )
