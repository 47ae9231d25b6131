"""A contextvar set for the length of a block: how per-call state (the build tree, the unit of
work, the bound session, a tracking scope) lives in the call's context, never on a class."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")


@contextmanager
def set_for_block(var: ContextVar[T], value: T) -> Iterator[None]:
    """Set ``var`` to ``value`` inside the block; restore what it was afterwards."""
    token = var.set(value)
    try:
        yield
    finally:
        var.reset(token)
