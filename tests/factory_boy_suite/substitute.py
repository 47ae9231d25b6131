"""pytest plugin: factory_boy's own test suite, with every factory a subclass of ours.

Loaded with ``-p substitute`` before factory_boy's test modules are imported, it replaces
``factory.Factory``, ``StubFactory``, ``DictFactory``, ``ListFactory`` and
``SQLAlchemyModelFactory`` (at every name they are reachable by) with subclasses of
``SQLAlchemyFactory``, so each factory those tests define is planned by ``plan_call`` and built by
``CompiledFactory``. Plain factories get a ``_create`` that only calls the model, as factory_boy's
``Factory._create`` does, and a registry that registers nothing (the suite defines many factories
per model on purpose).
"""

from __future__ import annotations

from typing import Any

import factory
import factory.alchemy
import factory.base
from factory import enums, errors

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory


class QuietRegistry(FactoryRegistry):
    """A registry that tracks but never auto-registers (factory_boy's suite reuses models)."""

    def auto_register(self, factory_cls: Any) -> None:
        return None


QUIET = QuietRegistry()


class Factory(SQLAlchemyFactory[Any]):
    """``factory.Factory``: builds plain objects; ``create`` just calls the model."""

    class Meta:
        abstract = True
        registry = QUIET
        sqlalchemy_session_persistence = None

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        return model_class(*args, **kwargs)


class BaseDictFactory(Factory):
    class Meta:
        abstract = True

    @classmethod
    def _build(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise ValueError(f"DictFactory {cls!r} does not support Meta.inline_args.")
        return model_class(**kwargs)

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        return cls._build(model_class, *args, **kwargs)


class DictFactory(BaseDictFactory):
    class Meta:
        model = dict


class BaseListFactory(Factory):
    class Meta:
        abstract = True

    @classmethod
    def _build(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        if args:
            raise ValueError(f"ListFactory {cls!r} does not support Meta.inline_args.")
        values = [v for k, v in sorted(kwargs.items(), key=lambda item: int(item[0]))]
        return model_class(values)

    @classmethod
    def _create(cls, model_class: Any, *args: Any, **kwargs: Any) -> Any:
        return cls._build(model_class, *args, **kwargs)


class ListFactory(BaseListFactory):
    class Meta:
        model = list


class StubFactory(Factory):
    class Meta:
        strategy = enums.STUB_STRATEGY
        model = factory.base.StubObject

    @classmethod
    def build(cls, *routed: Any, **kwargs: Any) -> Any:
        return cls.stub(*routed, **kwargs)

    @classmethod
    def create(cls, *routed: Any, **kwargs: Any) -> Any:
        raise errors.UnsupportedStrategy()


class SQLAlchemyModelFactory(SQLAlchemyFactory[Any]):
    """factory_boy's ``SQLAlchemyModelFactory``, with factory_boy's default persistence."""

    class Meta:
        abstract = True
        registry = QUIET
        sqlalchemy_session_persistence = None


REPLACEMENTS = {
    "Factory": Factory,
    "BaseDictFactory": BaseDictFactory,
    "DictFactory": DictFactory,
    "BaseListFactory": BaseListFactory,
    "ListFactory": ListFactory,
    "StubFactory": StubFactory,
}

for module in (factory, factory.base):
    for name, replacement in REPLACEMENTS.items():
        if hasattr(module, name):
            setattr(module, name, replacement)
factory.alchemy.SQLAlchemyModelFactory = SQLAlchemyModelFactory  # type: ignore[misc]
factory.SQLAlchemyModelFactory = SQLAlchemyModelFactory  # type: ignore[attr-defined]
