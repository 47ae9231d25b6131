"""Per-call state: a contextvar set for the length of a block (how the build tree, the unit of
work, the bound session and a tracking scope live in the call's context, never on a class), and
the cheap copy each call makes of its cached plan and parse."""

from __future__ import annotations

from contextvars import ContextVar, Token
from types import TracebackType
from typing import Generic, TypeVar

T = TypeVar("T")


class set_for_block(Generic[T]):  # named as the function it replaced: ``with set_for_block(...)``
    """Set ``var`` to ``value`` inside the block; restore what it was afterwards.

    A class rather than ``@contextmanager``: every factory call enters several of these, and a
    generator-based context manager costs several times as much to enter and leave.
    """

    __slots__ = ("_token", "_value", "_var")

    def __init__(self, var: ContextVar[T], value: T) -> None:
        self._var = var
        self._value = value

    def __enter__(self) -> None:
        self._token: Token[T] = self._var.set(self._value)

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._var.reset(self._token)


def shallow_copy(instance: T) -> T:
    """``copy.copy`` of a plain instance without its ``__reduce_ex__`` round trip: every factory
    call copies its cached plan (and the nodes it binds values into) and its parse."""
    mine: T = object.__new__(type(instance))
    vars(mine).update(vars(instance))
    return mine
