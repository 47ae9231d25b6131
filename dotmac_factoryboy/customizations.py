"""Type-routed overrides: ``customize(Model, ...)`` and ``LinkOnly(instance)`` (MilMove semantics)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .errors import CustomizationError, LinkOnlyError


def normalize_path(
    path: str | None, error: type[Exception] = ValueError, who: str = "customize()"
) -> tuple[str, ...] | None:
    """Turn ``"a.b"`` or ``"a__b"`` into ``("a", "b")``; ``""`` is the root, ``None`` means any."""
    if path is None:
        return None
    if not isinstance(path, str):
        raise error(
            f"{who} takes path= as a string such as 'project.lead' (or None for anywhere), got "
            f"{type(path).__name__} {path!r}. Fix: pass the place's path as one string."
        )
    parts = path.replace(".", "__").split("__")
    return tuple(p for p in parts if p)


def format_path(path: tuple[str, ...]) -> str:
    """Human form of a place path, as users type it in ``path=``."""
    return ".".join(path) if path else "<root>"


@dataclass(frozen=True)
class Customization:
    """Field overrides for the place(s) that build ``model``; immutable, so reusable across calls."""

    model: type[Any]
    fields: Mapping[str, Any]
    path: tuple[str, ...] | None = None

    def __repr__(self) -> str:
        where = f", path={format_path(self.path)!r}" if self.path is not None else ""
        return f"customize({self.model.__name__}{where}, {dict(self.fields)!r})"


def customize(model: type[Any], *, path: str | None = None, **fields: Any) -> Customization:
    """Override ``fields`` wherever the factory tree builds ``model`` (or at ``path``)."""
    if not isinstance(model, type):
        raise CustomizationError(
            f"customize() takes a model class first, got {type(model).__name__} {model!r}. Fix: "
            "pass the class itself, e.g. customize(Customer, name='x'); to set fields of the "
            "root, pass keywords to the factory call."
        )
    return Customization(
        model=model,
        fields=MappingProxyType(dict(fields)),
        path=normalize_path(path, CustomizationError),
    )


@dataclass(frozen=True)
class LinkOnly:
    """Link an existing row at a place instead of building one there."""

    instance: Any
    path: tuple[str, ...] | None = field(default=None)

    def __init__(self, instance: Any, *, path: str | None = None) -> None:
        object.__setattr__(self, "instance", instance)
        object.__setattr__(self, "path", normalize_path(path, LinkOnlyError, "LinkOnly()"))

    @property
    def model(self) -> type[Any]:
        """The class the linked instance is routed by."""
        return type(self.instance)


Routed = Customization | LinkOnly
"""What may be passed positionally to ``create``/``build``/``stub`` and the batch methods."""
