"""How a created instance reaches the database: one small strategy object per persistence mode.

The strategy is looked up once per factory call; bulk inserts and AsyncSession support will be
further strategies behind this same seam.
"""

from __future__ import annotations

from typing import Any, Protocol

from sqlalchemy.orm import Session

from .errors import ConfigurationError


class Persistence(Protocol):
    """Saves one new instance through a session."""

    def save(self, session: Session, instance: Any) -> None:
        """Make ``instance`` part of ``session`` (and possibly write it)."""


class AddOnly:
    """``sqlalchemy_session_persistence = None``: add to the session, let the caller flush."""

    def save(self, session: Session, instance: Any) -> None:
        session.add(instance)


class Flush(AddOnly):
    """``"flush"`` (our default): INSERT now, so the instance has its primary key."""

    def save(self, session: Session, instance: Any) -> None:
        super().save(session, instance)
        session.flush()


class Commit(AddOnly):
    """``"commit"``: INSERT and commit the session's transaction."""

    def save(self, session: Session, instance: Any) -> None:
        super().save(session, instance)
        session.commit()


STRATEGIES: dict[str | None, Persistence] = {None: AddOnly(), "flush": Flush(), "commit": Commit()}


def persistence_for(mode: str | None) -> Persistence:
    """The strategy for a ``sqlalchemy_session_persistence`` value."""
    try:
        return STRATEGIES[mode]
    except KeyError:
        raise ConfigurationError(
            f"Unknown sqlalchemy_session_persistence {mode!r}. Fix: use one of "
            f"{sorted(m for m in STRATEGIES if m)} or None."
        ) from None
