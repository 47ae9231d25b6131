"""``Faker``: factory_boy's Faker declaration, able to draw in Faker's unweighted mode.

Faker's weighted sampling (``random_elements`` over weighted name and word lists) is a large share
of a bulk build's time. Unweighted draws pick uniformly from the same lists: still realistic,
still reproducible for a seed, several times cheaper. Opt in per factory with
``Meta.faker_weighting = False`` (our ``Faker`` declarations of that factory follow it) or per
declaration with ``Faker("name", weighting=False)``; ``factory.Faker`` is never changed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import factory
import faker

from .factory_boy_adapter import meta_of_step
from .factory_boy_adapter.builder import faker_draw


@dataclass
class _Twin:
    """An unweighted Faker, the weighted one's provider list it copies, and its formatters."""

    faker: faker.Faker
    source: list[Any]
    synced: int = 0
    formatters: dict[str, Any] = field(default_factory=dict)


_UNWEIGHTED: dict[str, _Twin] = {}


def unweighted_faker(locale: str | None) -> faker.Faker:
    """The unweighted twin of factory_boy's Faker for ``locale``, with the same providers.

    It shares Faker's module-level random generator, so ``factory.random.reseed_random`` seeds
    both.
    """
    return _twin(locale).faker


def _twin(locale: str | None) -> _Twin:
    key = locale or ""
    twin = _UNWEIGHTED.get(key)
    if twin is not None and len(twin.source) == twin.synced:
        return twin  # the hot path: no provider was added since the last draw
    weighted = factory.Faker._get_faker(locale)
    if twin is None:
        twin = _UNWEIGHTED[key] = _Twin(
            faker.Faker(
                locale=weighted.locales[0] if weighted.locales else None, use_weighting=False
            ),
            weighted.providers,
        )
    known = {type(p) for p in twin.faker.providers}
    for provider in weighted.providers:  # providers added since: copy them over
        if type(provider) not in known:
            twin.faker.add_provider(type(provider))
            known.add(type(provider))
    twin.synced = len(twin.source)
    twin.formatters.clear()
    return twin


def unweighted_formatter(locale: str | None, provider: str) -> Any:
    """The unweighted twin's bound method for ``provider`` (looked up once per provider set)."""
    twin = _twin(locale)
    found = twin.formatters.get(provider)
    if found is None:
        found = twin.formatters[provider] = getattr(twin.faker, provider)
    return found


class Faker(factory.Faker):
    """``factory.Faker`` plus ``weighting``: ``None`` follows ``Meta.faker_weighting`` of the
    factory evaluating it (default ``True``, Faker's own behaviour); ``False`` draws unweighted."""

    def __init__(self, provider: str, *, weighting: bool | None = None, **kwargs: Any) -> None:
        super().__init__(provider, **kwargs)  # type: ignore[no-untyped-call]
        self.weighting = weighting

    def weighted(self, factory_meta: Any) -> bool:
        """Whether this declaration draws weighted for a factory with options ``factory_meta``."""
        if self.weighting is not None:
            return self.weighting
        return bool(getattr(factory_meta, "faker_weighting", True))

    def shortcut(self, factory_meta: Any) -> Callable[[], Any] | None:
        """The builder's direct draw for this declaration (its class exactly), if it has one."""
        if self.weighted(factory_meta):
            return faker_draw(self)
        return faker_draw(self, unweighted_formatter)

    def evaluate(self, instance: Any, step: Any, extra: dict[str, Any]) -> Any:
        if self.weighted(meta_of_step(step)):
            return super().evaluate(instance, step, extra)  # type: ignore[no-untyped-call]
        locale = extra.pop("locale")
        return unweighted_formatter(locale, self.provider)(**extra)
