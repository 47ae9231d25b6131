"""The plan's data: places (nodes) with their ranked inputs, the value that won each field and
where it came from, and the read-only views the public API returns."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..customizations import format_path
from ..errors import CustomizationError
from ..factory_boy_adapter import describe
from ..scoping import TenantSpec

MAX_DEPTH = 8
"""How deep the walk follows SubFactory/RelatedFactory chains (cycles stop it earlier)."""

CALLER_SOURCES = frozenset({"caller", "customize", "link", "link by key"})
"""Sources that are the caller's own word: unknown names and bad values among them are errors."""

Layer = tuple[str, Mapping[str, Any]]
"""One ranked input of a node: where the values came from, and the values."""


@dataclass(frozen=True)
class FieldValue:
    """The value that fills a field, and where it came from (caller, a trait, a default...)."""

    value: Any
    source: str

    def __repr__(self) -> str:
        return f"{describe(self.value)} [{self.source}]"


def is_local(source: str) -> bool:
    """Whether a value comes from the node's own defaults or traits (not from above)."""
    return source == "default" or (source.startswith("trait ") and " at " not in source)


def is_emitted(source: str) -> bool:
    """Whether factory_boy must be told this value (it produces defaults itself)."""
    return source != "default" and not source.startswith("declaration")


@dataclass(eq=False)
class PlanNode:
    """One place of the build tree (internal; the public read-only view is ``Place``)."""

    factory: Any
    path: tuple[str, ...]
    layers: list[Layer]
    provided: frozenset[str] = frozenset()
    fields: dict[str, FieldValue] = field(default_factory=dict)
    flags: dict[str, FieldValue] = field(default_factory=dict)
    traits: list[str] = field(default_factory=list)
    per_object: frozenset[str] = frozenset()
    """Trait flags whose value is a declaration: factory_boy decides them for each object."""
    nested: dict[str, list[Layer]] = field(default_factory=dict)
    children: dict[str, PlanNode] = field(default_factory=dict)
    tenant: TenantSpec | None = None
    stopped: list[str] = field(default_factory=list)
    """Declared places not followed: a self-reference nothing addresses."""
    role: str = "build"
    """``build``; ``tenant`` (the tree's tenant place); ``pinned`` (set to the tree's tenant)."""

    @property
    def model(self) -> type[Any]:
        """The model class built at this place."""
        model: type[Any] = self.factory._meta.model
        return model

    @property
    def label(self) -> str:
        """The path as users write it."""
        return format_path(self.path)

    def explicit(self) -> Iterator[tuple[str, FieldValue]]:
        """Own fields and flags the caller set here (keywords, customize, links)."""
        for name, value in (*self.fields.items(), *self.flags.items()):
            if value.source in CALLER_SOURCES:
                yield name, value


@dataclass(frozen=True)
class Place:
    """Read-only view of one place: what is built there, by which factory, from which values."""

    path: str
    model: type[Any]
    factory: Any
    role: str
    fields: Mapping[str, FieldValue]
    traits: tuple[str, ...]
    stopped: tuple[str, ...] = ()
    """Declared places the walk did not follow below a repeated factory (a self-reference) that
    no key or customize() reaches."""

    def __repr__(self) -> str:
        traits = f" traits={list(self.traits)}" if self.traits else ""
        role = "" if self.role == "build" else f" ({self.role})"
        head = f"{self.path}: {self.model.__name__} by {self.factory.__name__}{role}{traits}"
        body = [f"    {name} = {value!r}" for name, value in self.fields.items()]
        if self.stopped:
            body.append(
                f"    (not followed below this repeat of {self.factory.__name__}: "
                f"{', '.join(self.stopped)}; a key such as {self.stopped[0]}__field=... or "
                "customize(..., path=...) follows it)"
            )
        return "\n".join([head, *body])


@dataclass(frozen=True)
class Link:
    """A row the call links at a place instead of building one."""

    path: str
    instance: Any


def refuse_inside_linked(root: str, where: str, keys: list[str], how: str) -> None:
    raise CustomizationError(
        f"{root}: override(s) {', '.join(keys)} target the inside of {where!r}, which {how}, "
        "so they would be dropped. Fix: set those fields on the instance itself, or build the "
        "place instead of linking it."
    )
