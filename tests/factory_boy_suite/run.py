"""factory_boy's own test suite through our plan and builder: the drop-in gate.

Downloads the sdist of the installed factory_boy (it ships ``tests/``), then runs:

1. the substitution run: factory_boy's test modules with every factory a subclass of ours
   (``substitute.py``); the failures must be exactly those in ``allowed_failures.txt``;
2. the installed-plugin run: ``tests/test_fuzzy.py`` under factory_boy's own ``-W error`` policy
   with nothing substituted, which must pass (installing the package changes no outcome).

Usage: ``python tests/factory_boy_suite/run.py [WORKDIR]`` (``nox -s factory_boy_suite``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
import xml.etree.ElementTree as ET
from importlib.metadata import version
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODULES = [
    "test_using",
    "test_base",
    "test_declarations",
    "test_faker",
    "test_helpers",
    "test_regression",
    "test_transformer",
    "test_utils",
    "test_alchemy",
    "test_docs_internals",
    "test_fuzzy",
    "test_dev_experience",
]


def fetch_suite(workdir: Path) -> Path:
    """The extracted sdist of the installed factory_boy (downloaded once per work dir)."""
    release = version("factory_boy")
    root = workdir / f"factory_boy-{release}"
    if (root / "tests").is_dir():
        return root
    sdist = ["--no-binary", ":all:", "--no-deps", "-d", str(workdir)]
    pip = [sys.executable, "-m", "pip", "download", "-q", f"factory_boy=={release}", *sdist]
    subprocess.run(pip, check=True)
    safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
    with tarfile.open(workdir / f"factory_boy-{release}.tar.gz") as archive:
        archive.extractall(workdir, **safe)  # type: ignore[arg-type]
    return root


def allowed() -> dict[str, str]:
    """Node id -> documented reason."""
    found = {}
    for line in (HERE / "allowed_failures.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            node, _, reason = line.partition(" # ")
            found[node.strip()] = reason.strip()
    return found


def failures(report: Path) -> set[str]:
    """Node ids of the failed and errored tests in a JUnit XML report."""
    failed = set()
    for case in ET.parse(report).iter("testcase"):
        if case.find("failure") is not None or case.find("error") is not None:
            module = case.get("classname", "").rsplit(".", 1)
            path = module[0].replace(".", "/") + ".py"
            failed.add(f"{path}::{module[1]}::{case.get('name')}")
    return failed


def pytest_run(root: Path, report: Path, *args: str, env: dict[str, str]) -> int:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    command += ["-o", "addopts=", f"--junitxml={report}", *args]
    return subprocess.run(command, cwd=root, env=env, check=False).returncode


def main() -> int:
    workdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    workdir.mkdir(parents=True, exist_ok=True)
    root = fetch_suite(workdir)
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    env.pop("DJANGO_SETTINGS_MODULE", None)

    report = workdir / "substituted.xml"
    paths = [f"tests/{m}.py" for m in MODULES]
    pytest_run(root, report, "-p", "substitute", *paths, env=env)
    failed, expected = failures(report), allowed()
    unexpected = sorted(failed - set(expected))
    fixed = sorted(set(expected) - failed)

    plain = workdir / "installed.xml"
    plain_status = pytest_run(
        root,
        plain,
        "-W",
        "error",
        # pytest-asyncio (0.24+, in our test extras) asks every project to choose a loop scope
        "-W",
        'ignore:The configuration option "asyncio_default_fixture_loop_scope" is unset',
        "tests/test_fuzzy.py",
        env={**os.environ},
    )
    print(f"\nsubstitution run: {len(failed)} failed, {len(expected)} allowed")
    for node in unexpected:
        print(f"  UNEXPECTED failure: {node}")
    for node in fixed:
        print(f"  now passes, remove from allowed_failures.txt: {node}")
    print(f"installed-plugin run (test_fuzzy.py, -W error): exit {plain_status}")
    return 1 if unexpected or fixed or plain_status != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
