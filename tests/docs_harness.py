"""Runs every code block of the README and the docs, so the documentation cannot drift.

Per document, in order (Sybil evaluates a page's blocks one after another):

- a block whose first line is ``# <file name>`` (Python, ini or toml) is written to the page's own
  project folder, as the reader would save it; a ``test_*.py`` file is then run by pytest there;
- any other Python block defining ``test_`` functions is saved as a test file and run by pytest;
- any other Python block runs in the page's namespace, where the default registry is bound to a
  session on a fresh SQLite database holding the ISP schema (as in a test using ``db_session``).

Each pytest run is a real subprocess in the page's folder, with the installed plugin and only the
files the page showed (plus earlier pages' nothing): what passes here passes for a reader.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sybil import Example, Sybil
from sybil.parsers.markdown import CodeBlockParser

from dotmac_factoryboy import registry
from dotmac_factoryboy.engines import sqlite_savepoints
from dotmac_factoryboy.isp.models import Base as ISPBase

FILE_HEADER = re.compile(r"^#\s*([\w./-]+\.(?:py|ini|toml|cfg))\s*$")


def _project(example: Example) -> Path:
    return Path(example.namespace["__project__"])


def write_or_run(example: Example) -> None:
    """The evaluator for Python blocks: save, run with pytest, or execute (see module doc)."""
    code: str = example.parsed
    header = _header(code)
    if header is not None:
        target = _save(_project(example) / header.group(1), code)
        if target.name.startswith("test_") and target.suffix == ".py":
            _pytest(example, target)
        return
    if re.search(r"^def test_", code, re.MULTILINE):
        page = Path(example.document.path).stem.replace("-", "_").lower()
        target = _project(example) / f"test_{page}_line_{example.line}.py"
        target.write_text(code)
        _pytest(example, target)
        return
    exec(compile(code, f"{example.document.path}:{example.line}", "exec"), example.namespace)


def write_file(example: Example) -> None:
    """The evaluator for ini/toml blocks: saved when they name their file, else only shown."""
    code: str = example.parsed
    header = _header(code)
    if header is not None:
        _save(_project(example) / header.group(1), code)


def _header(code: str) -> re.Match[str] | None:
    """The ``# <file name>`` first line of a block, if it has one."""
    return FILE_HEADER.match(code.splitlines()[0]) if code.strip() else None


def _save(target: Path, code: str) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(code)
    return target


def _pytest(example: Example, test_file: Path) -> None:
    project = _project(example)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "DOTMAC_TEST_"))}
    env["PYTHONPATH"] = str(project)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-W",
            "error",
            "-W",  # pytest-asyncio (0.24+) asks each project to choose; a reader's sees a warning
            'ignore:The configuration option "asyncio_default_fixture_loop_scope" is unset',
            str(test_file.relative_to(project)),
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"{example.document.path}:{example.line}: pytest failed on the block "
            f"({test_file.name}):\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
        )


def setup(namespace: dict[str, Any]) -> None:
    """A project folder for the page, and the default registry bound to an ISP database."""
    project = tempfile.mkdtemp(prefix="docs-")
    engine = create_engine(f"sqlite:///{project}/docs.db")
    sqlite_savepoints(engine)
    ISPBase.metadata.create_all(engine)
    session = Session(engine)
    registry.bind(session)
    sys.path.insert(0, project)
    namespace.update(__project__=project, __engine__=engine, session=session)


def teardown(namespace: dict[str, Any]) -> None:
    registry.bind(None)
    namespace["session"].close()
    namespace["__engine__"].dispose()
    sys.path.remove(namespace["__project__"])
    for name in [m for m, module in sys.modules.items() if _from(module, namespace)]:
        del sys.modules[name]  # a page's own modules (models.py...) never leak into the next


def _from(module: Any, namespace: dict[str, Any]) -> bool:
    return str(getattr(module, "__file__", "") or "").startswith(namespace["__project__"])


docs = Sybil(
    parsers=[
        CodeBlockParser("python", write_or_run),
        CodeBlockParser("ini", write_file),
        CodeBlockParser("toml", write_file),
    ],
    patterns=["README.md", "docs/pages/*.md"],
    path=str(Path(__file__).resolve().parent.parent),  # the repository root
    setup=setup,
    teardown=teardown,
)
