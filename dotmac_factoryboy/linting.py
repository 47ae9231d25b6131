"""``lint()``: every factory built and created (alone, with each trait, with each pair of traits)
inside savepoints that are rolled back, plus what the call plan sees without writing anything.

Like factory_bot's ``FactoryBot.lint``: a broken factory fails in one test that names it, not in
whichever test happens to use it first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from factory import enums
from sqlalchemy.orm import Session

from .errors import ConfigurationError, first_line
from .factories import SQLAlchemyFactory, registry_of
from .factory_boy_adapter import SPLITTER, is_declaration, shape_of
from .plan import plan_call
from .registry import FactoryRegistry
from .registry import registry as default_registry
from .session import actual, bound_session, check_sync, writes_held_in

__all__ = ["LintFailure", "LintFinding", "LintReport", "lint"]


@dataclass(frozen=True)
class LintFailure:
    """A call that raised, or a declaration no call could pass to the model."""

    factory: str
    traits: tuple[str, ...]
    exception: str
    message: str


@dataclass(frozen=True)
class LintFinding:
    """Something the plan sees that is legal but worth knowing (it does not fail the lint)."""

    factory: str
    kind: str
    message: str


@dataclass
class LintReport:
    """What ``lint()`` checked and what failed; ``ok`` is True when nothing failed."""

    checked: int = 0
    failures: list[LintFailure] = field(default_factory=list)
    findings: list[LintFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def __str__(self) -> str:
        lines = [f"{self.checked} calls checked, {len(self.failures)} failed"]
        lines += [
            f"FAIL {f.factory}({', '.join(f.traits) or 'no traits'}): {f.exception}: {f.message}"
            for f in self.failures
        ]
        lines += [f"note {f.factory} [{f.kind}]: {f.message}" for f in self.findings]
        return "\n".join(lines)


def failure_lines(failures: Iterable[LintFailure]) -> list[str]:
    """One line per distinct failure (factory, exception, message), listing every trait set it
    happened with: readable in a CI log, where a table would cut names."""
    groups: dict[tuple[str, str, str], list[tuple[str, ...]]] = {}
    for failure in failures:
        key = (failure.factory, failure.exception, failure.message)
        groups.setdefault(key, []).append(failure.traits)
    lines = []
    for (factory_name, exception, message), trait_sets in groups.items():
        shown = " | ".join("+".join(t) or "no traits" for t in trait_sets)
        calls = f" ({len(trait_sets)} calls)" if len(trait_sets) > 1 else ""
        lines.append(f"FAIL {factory_name} [{shown}]{calls}: {exception}: {message}")
    return lines


def lint(
    *,
    registry: FactoryRegistry | None = None,
    session: Session | None = None,
    traits: bool = True,
    factories: Iterable[Any] | None = None,
) -> LintReport:
    """Build and create every factory of ``registry`` (or ``factories``) in ``session``.

    Each call runs in a SAVEPOINT that is rolled back, so the session's data is unchanged
    afterwards; every factory writes through ``session`` then, whatever session its Meta names
    (and commit persistence only flushes), so lint never leaves a row anywhere. With ``traits``, each trait alone and each pair of traits is created too.
    """
    registry = registry if registry is not None else default_registry
    session = session if session is not None else bound_session(registry)
    if session is None:
        raise ConfigurationError(
            "lint(): no session. Fix: pass session=..., or call it inside registry.bound(session)."
        )
    check_sync(session, "lint()")
    session = actual(session)
    chosen = list(factories) if factories is not None else list(registry.factories.values())
    report = LintReport()
    for factory_cls in chosen:
        report.failures += _unknown_fields(factory_cls)
        report.findings += _plan_findings(factory_cls)
        calls: list[tuple[str, ...]] = [()]
        if traits:
            names = list(shape_of(factory_cls).traits)
            calls += [(name,) for name in names] + list(combinations(names, 2))
        for enabled in calls:
            report.checked += 1
            failure = _try(factory_cls, enabled, session)
            if failure is not None:
                report.failures.append(failure)
    return report


def _try(factory_cls: Any, enabled: tuple[str, ...], session: Session) -> LintFailure | None:
    """Build then create ``factory_cls`` with ``enabled`` traits; the failure, if any."""
    kwargs = dict.fromkeys(enabled, True)
    try:
        with _rolled_back(factory_cls, session):
            factory_cls.build(**kwargs)
            factory_cls.create(**kwargs)
            session.flush()
    except Exception as exc:  # a lint reports every failure, whatever its type
        return LintFailure(factory_cls.__name__, enabled, type(exc).__name__, first_line(exc))
    return None


@contextmanager
def _rolled_back(factory_cls: Any, session: Session) -> Iterator[None]:
    """The block's writes in a SAVEPOINT rolled back afterwards; its tracking forgotten."""
    registry = registry_of(factory_cls) if issubclass(factory_cls, SQLAlchemyFactory) else None
    savepoint = session.begin_nested()
    try:
        if registry is None:
            with writes_held_in(session):
                yield
            return
        with writes_held_in(session), registry.bound(session), registry.scope() as scope:
            try:
                yield
            finally:
                registry.forget(scope)
    finally:
        savepoint.rollback()  # also after a failed flush, which leaves it inactive, not closed


def _unknown_fields(factory_cls: Any) -> list[LintFailure]:
    """Declarations and trait fields the model's constructor would reject."""
    meta, shape = factory_cls._meta, shape_of(factory_cls)
    model = meta.model
    skipped = {*meta.exclude, *shape.post, *shape.traits}
    where: dict[str, list[str]] = defaultdict(list)
    for name in shape.declarations:
        where[name].append("declaration")
    for trait, overrides in shape.traits.items():
        for name in overrides:
            if SPLITTER not in name and name not in shape.traits:
                where[name].append(f"trait {trait}")
    failures = []
    for name, sources in where.items():
        target = meta.rename.get(name, name)
        if name in skipped or hasattr(model, target):
            continue
        failures.append(
            LintFailure(
                factory_cls.__name__,
                (),
                "UnknownFieldError",
                f"{name!r} ({', '.join(sources)}) is not an attribute of {model.__name__}. "
                f"Fix: rename it to a mapped attribute, or list it in Meta.exclude / Params.",
            )
        )
    return failures


def _plan_findings(factory_cls: Any) -> list[LintFinding]:
    """Places a type-routed customize() cannot pick, and trait pairs that set a field twice."""
    name = factory_cls.__name__
    findings = []
    try:
        places = plan_call(factory_cls, enums.CREATE_STRATEGY, (), {}).places
    except Exception as exc:  # reported by the calls themselves
        return [LintFinding(name, "plan", first_line(exc))]
    paths: dict[str, list[str]] = defaultdict(list)
    for place in places:
        if place.role == "build":
            paths[place.model.__name__].append(place.path)
    for model, found in paths.items():
        if len(found) > 1:
            findings.append(
                LintFinding(
                    name,
                    "ambiguous place",
                    f"{model} is built at {', '.join(found)}: customize({model}, ...) needs "
                    "path= here.",
                )
            )
    traits = shape_of(factory_cls).traits
    for first, second in combinations(traits, 2):
        differ = [
            key
            for key in set(traits[first]) & set(traits[second])
            if _differ(traits[first][key], traits[second][key])
        ]
        if differ:
            findings.append(
                LintFinding(
                    name,
                    "trait conflict",
                    f"traits {first} and {second} both set {', '.join(sorted(differ))}: "
                    "the one enabled first wins.",
                )
            )
    return findings


def _differ(a: Any, b: Any) -> bool:
    return is_declaration(a) or is_declaration(b) or bool(a != b)
