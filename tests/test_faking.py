"""Faker's unweighted mode, opted into per factory or per declaration; factory.Faker unchanged.

The probe is Faker's weighted en_US first names: "James" is drawn about 3% of the time with
weights, much less when every name is equally likely. Seeds make the counts exact.
"""

from __future__ import annotations

import factory
from factory.random import reseed_random

from dotmac_factoryboy import Faker, SQLAlchemyFactory

from .saas_factories import saas_registry
from .saas_schema import Member


class UnweightedMemberFactory(SQLAlchemyFactory[Member]):
    class Meta:
        model = Member
        register = False
        registry = saas_registry
        faker_weighting = False

    role = "member"
    name = Faker("first_name_male")


class WeightedMemberFactory(UnweightedMemberFactory):
    class Meta:
        faker_weighting = True
        register = False


class PlainMemberFactory(UnweightedMemberFactory):
    class Meta:
        register = False

    name = factory.Faker("first_name_male")


class ChosenMemberFactory(WeightedMemberFactory):
    class Meta:
        register = False

    name = Faker("first_name_male", weighting=False)


def names(factory_cls: type[UnweightedMemberFactory]) -> list[str]:
    reseed_random(7)
    return [factory_cls.build().name for _ in range(2000)]


def test_unweighted_draws_spread_evenly_and_are_reproducible() -> None:
    unweighted = names(UnweightedMemberFactory)
    assert unweighted.count("James") < 25
    assert names(UnweightedMemberFactory) == unweighted
    assert names(ChosenMemberFactory).count("James") < 25


def test_weighted_is_the_default_and_factory_faker_is_untouched() -> None:
    assert names(WeightedMemberFactory).count("James") > 35
    assert names(PlainMemberFactory).count("James") > 35
