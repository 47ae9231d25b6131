"""Collects the README's and the docs' code blocks as tests (see tests/docs_harness.py)."""

from tests.docs_harness import docs

pytest_collect_file = docs.pytest()
