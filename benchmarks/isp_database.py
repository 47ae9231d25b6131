"""What the ISP benchmarks share: the backends to run on and a fresh ISP schema on each."""

from __future__ import annotations

import os
import tempfile

from sqlalchemy import Engine, create_engine, event

from dotmac_factoryboy.isp.models import Base


def backend_urls() -> dict[str, str]:
    """An SQLite file always; PostgreSQL and MariaDB when their test URLs are set."""
    urls = {"SQLite (file)": f"sqlite:///{tempfile.mkdtemp()}/bench.db"}
    for name, variable in (
        ("PostgreSQL", "DOTMAC_TEST_POSTGRES_URL"),
        ("MariaDB", "DOTMAC_TEST_MARIADB_URL"),
    ):
        if os.environ.get(variable):
            urls[name] = os.environ[variable]
    return urls


def fresh_engine(url: str) -> Engine:
    """An engine on ``url`` with an empty ISP schema (foreign keys enforced on SQLite too)."""
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", lambda c, _: c.execute("PRAGMA foreign_keys=ON"))
    Base.metadata.drop_all(engine)
    Base.metadata.create_all(engine)
    return engine
