"""One exception hierarchy: every misuse names the factory, the field or path, and the fix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from factory.errors import FactoryError


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (its repr when the message is empty), for reports
    that give one line per failure."""
    text = str(exc).strip() or repr(exc)
    return text.splitlines()[0]


class DotmacFactoryError(FactoryError):
    """Base of every error raised by dotmac-factoryboy."""


class ConfigurationError(DotmacFactoryError, RuntimeError):
    """A factory is missing something it needs to run (a session, a tenant factory...)."""


class UnknownFieldError(DotmacFactoryError, TypeError):
    """A keyword argument is not a model attribute, declaration, Param or trait."""


class FieldValueError(DotmacFactoryError, TypeError):
    """A keyword names a real field but gives a value the model cannot take there."""


class BatchSizeError(DotmacFactoryError, ValueError):
    """A batch size is negative, or given twice (``size`` and ``count``)."""


class BatchError(DotmacFactoryError):
    """A row of a batch failed to write; the whole batch was rolled back and nothing is tracked."""

    def __init__(self, message: str, *, factory: Any, index: int | None) -> None:
        super().__init__(message)
        self.factory = factory
        self.index = index


class FactoryNotFoundError(DotmacFactoryError, LookupError):
    """No factory is registered under that name or for that model."""


class CleanupError(DotmacFactoryError):
    """Some tracked rows could not be deleted, or cleanup handlers raised."""

    def __init__(
        self, message: str, *, blocked: Sequence[Any] = (), errors: Sequence[BaseException] = ()
    ) -> None:
        super().__init__(message)
        self.blocked = list(blocked)
        self.errors = list(errors)


class TenantIsolationError(DotmacFactoryError):
    """Objects of one build tree would belong to different tenants."""


class TenantContextError(TenantIsolationError, ValueError):
    """A tenant context (or factory-level tenant) was given something that is not a tenant."""


class CustomizationError(DotmacFactoryError):
    """A ``customize()`` or an override cannot be routed to exactly one place."""


class LinkOnlyError(DotmacFactoryError):
    """A ``LinkOnly`` instance cannot be linked where or how it was asked."""


class RelationshipError(DotmacFactoryError):
    """A relationship definition names unknown factories or attributes."""


class ScenarioError(DotmacFactoryError):
    """A scenario step failed, is unknown, or the steps form a cycle."""


class RowsModeError(DotmacFactoryError):
    """``insert_batch`` was asked for something only ORM instances in a session can do."""


class TargetError(ConfigurationError):
    """A module, metadata or database named by a string cannot be loaded or reached."""


class SeedError(DotmacFactoryError):
    """``seed`` was given counts or options it cannot honour."""


class SeedFailedError(SeedError):
    """A tenant could not be seeded (a factory or the database failed); its message names it."""


class SeedRefusedError(SeedError):
    """``seed`` would write into tables that already hold rows (pass ``--append`` to add)."""


class SkippedPlaceError(DotmacFactoryError, AttributeError):
    """A declaration read an attribute of a place the call does not build (a skipped place)."""
