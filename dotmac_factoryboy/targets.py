"""A user's metadata and factories, found by name (``module:attr`` and ``module``), as the CLI and
its worker processes take them."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from sqlalchemy import MetaData

from .errors import TargetError
from .factories import SQLAlchemyFactory

ISP_FACTORIES = "dotmac_factoryboy.isp.seed"
"""The default: the ISP reference domain, named (never imported) by the core and the CLI."""


def load_module(name: str, option: str = "--factories", given: str | None = None) -> ModuleType:
    """Import ``name``; a missing module is a ``TargetError`` naming the option as given."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise TargetError(
            f"{option} {given or name}: cannot import {name} ({exc}). Fix: pass an importable module, "
            "e.g. myapp.tests.factories, and run from the directory that holds it."
        ) from exc


def load_metadata(spec: str, option: str = "--metadata") -> MetaData:
    """The ``MetaData`` named by ``module:attr`` (``attr`` may be dotted, e.g. ``Base.metadata``,
    or a declarative Base; ``module`` alone means ``module:metadata``)."""
    module_name, _, attr = spec.partition(":")
    found: Any = load_module(module_name, option, spec)
    for part in (attr or "metadata").split("."):
        if not hasattr(found, part):
            raise TargetError(
                f"{option} {spec}: {module_name} has no attribute {attr or 'metadata'!r}. Fix: "
                "name a MetaData or declarative Base in it, e.g. myapp.models:Base."
            )
        found = getattr(found, part)
    if hasattr(found, "metadata") and not isinstance(found, MetaData):
        found = found.metadata  # a declarative Base given for its metadata
    if not isinstance(found, MetaData):
        raise TargetError(
            f"{option} {spec}: {type(found).__name__} is not a SQLAlchemy MetaData. Fix: name "
            "Base.metadata (or the Base)."
        )
    return found


def metadata_for(spec: str | None, factories: list[Any]) -> MetaData:
    """The metadata named by ``spec``, or else the one the factories' models are mapped in."""
    if spec is not None:
        return load_metadata(spec)
    metadata: MetaData = factories[0]._meta.model.metadata
    return metadata


def factories_in(module: ModuleType) -> list[Any]:
    """The concrete factories a module defines or imports, in definition order."""
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, SQLAlchemyFactory)
        and not value._meta.abstract
        and value._meta.model is not None
    ]
    if not found:
        raise TargetError(
            f"--factories {module.__name__}: defines no SQLAlchemyFactory subclasses. Fix: name "
            "the module that defines (or imports) your factories."
        )
    return found
