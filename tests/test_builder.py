"""The builder that parses a factory once per call gives what factory_boy's own StepBuilder gives.

Each case builds the same factory with the same seed through factory_boy (``Factory.build``) and
through our builder, and compares every attribute of the objects, their sub-objects and what
post-generation declarations recorded. The factories are plain factory_boy ones, so every kind of
declaration is exercised as factory_boy defines it.
"""

from __future__ import annotations

from typing import Any

import factory
import pytest
from factory import enums, errors
from factory.random import reseed_random

from dotmac_factoryboy import Faker
from dotmac_factoryboy.factory_boy_adapter.builder import compiled


class Thing:
    """A plain model: keeps whatever the factory passes as attributes, for comparison."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.log: list[Any] = []
        vars(self).update(kwargs)


def plain(value: Any) -> Any:
    """Objects as nested plain data, to compare two builds."""
    if isinstance(value, Thing):
        return plain(vars(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class Owner(factory.Factory):
    class Meta:
        model = Thing

    name = factory.Faker("name")
    code = factory.Sequence(lambda n: f"O{n}")


class Item(factory.Factory):
    class Meta:
        model = Thing
        exclude = ("hidden",)
        rename = {"kind_": "kind"}

    class Params:
        discount = 0
        premium = factory.Trait(price=100, label=factory.LazyAttribute(lambda o: f"P-{o.code}"))

    hidden = factory.Faker("word")
    code = factory.LazyAttributeSequence(lambda o, n: f"{o.hidden}-{n}")
    label = factory.LazyAttribute(lambda o: o.code.upper())
    price = factory.LazyAttribute(lambda o: 50 - o.discount)
    kind_ = factory.Iterator(["a", "b", "c"])
    owner = factory.SubFactory(Owner, name=factory.SelfAttribute("..label"))
    owner_code = factory.SelfAttribute("owner.code", default=None)
    first = factory.LazyFunction(lambda: 7)
    city = factory.Faker("city", locale="fr_FR")
    digits = factory.Faker("pystr", max_chars=6)
    unweighted = Faker("first_name", weighting=False)
    tags = factory.List([factory.Faker("word"), "fixed"])
    extra = factory.Dict({"n": factory.Sequence(int), "w": factory.Faker("word")})
    maybe = factory.Maybe("first", yes_declaration=factory.SubFactory(Owner), no_declaration=None)

    @factory.post_generation
    def notes(obj: Thing, create: bool, extracted: Any, **kwargs: Any) -> None:
        obj.log.append(("notes", create, extracted, sorted(kwargs.items())))

    audit = factory.RelatedFactory(Owner, factory_related_name="subject", name="auditor")


class Positional(factory.Factory):
    class Meta:
        model = Thing
        inline_args = ("first", "second")

    first = factory.Sequence(lambda n: n)
    second = factory.Faker("word")


class Flagged(factory.Factory):
    """Maybes whose decider reads a field the call may leave undeclared (trait flags): our
    builder decides those once per parse."""

    class Meta:
        model = Thing
        exclude = ("secret",)

    class Params:
        vip = factory.Trait(grade=factory.Faker("word"), tier="gold")
        wholesale = factory.Trait(vip=True, tier="bulk")

    grade = "standard"
    tier = "basic"
    nick = factory.Maybe(
        factory.SelfAttribute("absent", default=True),
        yes_declaration=factory.Faker("first_name"),
        no_declaration="never",
    )
    sponsor = factory.Maybe(
        factory.SelfAttribute("absent", default=False),
        yes_declaration=None,
        no_declaration=factory.SubFactory(Owner),
    )
    nested = factory.Maybe(
        factory.SelfAttribute("absent", default=0),
        yes_declaration="no",
        no_declaration=factory.Maybe(
            factory.SelfAttribute("tier"), yes_declaration=factory.Sequence(str), no_declaration=1
        ),
    )
    flat = factory.Maybe("unset_flag", yes_declaration="yes", no_declaration=factory.Faker("word"))
    gone = factory.Maybe(factory.SelfAttribute("absent", default=False), yes_declaration=1)
    secret = factory.Faker("word")
    shown = factory.LazyAttribute(lambda o: o.secret.upper())


class ReadsAhead(factory.Factory):
    """A sub-object reads fields of its parent that come after it (a draw, a sequence): the
    parent's resolver computes them early, and the parent keeps those values."""

    class Meta:
        model = Thing

    first = factory.Faker("word")
    owner = factory.SubFactory(
        Owner, name=factory.SelfAttribute("..later"), code=factory.SelfAttribute("..number")
    )
    later = factory.Faker("word")
    number = factory.Sequence(lambda n: f"N{n}")
    last = factory.Faker("word")


CASES: list[tuple[type[factory.Factory], dict[str, Any]]] = [
    (ReadsAhead, {}),
    (ReadsAhead, {"later": "given"}),
    (Flagged, {}),
    (Flagged, {"vip": True}),
    (Flagged, {"wholesale": True, "absent": False, "unset_flag": 1}),
    (Flagged, {"absent": True, "tier": ""}),
    (Owner, {}),
    (Item, {}),
    (Item, {"premium": True}),
    (Item, {"discount": 5, "owner__code": "X", "notes": "given", "notes__flag": 1}),
    (Item, {"owner": None, "maybe": "set", "first": 0, "__sequence": 42}),
    (Item, {"city__locale": "de_DE", "digits__max_chars": 3, "extra__w": "fixed"}),
    (Positional, {}),
]


def through_factory_boy(factory_cls: Any, kwargs: dict[str, Any]) -> Any:
    return factory_cls.build(**kwargs)


def through_ours(factory_cls: Any, kwargs: dict[str, Any]) -> Any:
    return compiled(factory_cls, enums.BUILD_STRATEGY, kwargs).build()


@pytest.mark.parametrize(("factory_cls", "kwargs"), CASES)
def test_our_builder_builds_what_factory_boy_builds(
    factory_cls: Any, kwargs: dict[str, Any]
) -> None:
    made = []
    for build in (through_factory_boy, through_ours):
        reseed_random(99)
        factory_cls.reset_sequence()
        Owner.reset_sequence()
        Flagged.reset_sequence()
        ReadsAhead.reset_sequence()
        for iterator in (Item.kind_,):
            iterator.reset()
        made.append([plain(build(factory_cls, dict(kwargs))) for _ in range(4)])
    assert made[0] == made[1]
    assert made[0][0] != made[0][1]  # the objects differ (sequence and Faker moved on)


def test_a_maybe_on_an_undeclared_flag_is_decided_once_per_parse() -> None:
    # the case above compares the values; this shows the fast path was the one taken
    undecided = compiled(Flagged, enums.BUILD_STRATEGY, {"absent": True})
    decided = compiled(Flagged, enums.BUILD_STRATEGY, {})
    assert {"nick", "flat"} <= set(decided.leaves)
    assert "sponsor" in decided.fast
    assert not {"nick", "sponsor"} & set(undecided.leaves)
    assert "flat" in undecided.leaves  # it reads another flag


def test_one_parse_builds_many_objects_like_many_calls() -> None:
    reseed_random(5)
    Item.reset_sequence()
    Owner.reset_sequence()
    Item.kind_.reset()
    expected = [plain(Item.build(discount=1)) for _ in range(5)]
    reseed_random(5)
    Item.reset_sequence()
    Owner.reset_sequence()
    Item.kind_.reset()
    builder = compiled(Item, enums.BUILD_STRATEGY, {"discount": 1})
    assert [plain(builder.build()) for _ in range(5)] == expected


class Cyclic(factory.Factory):
    class Meta:
        model = Thing

    a = factory.LazyAttribute(lambda o: o.b)
    b = factory.LazyAttribute(lambda o: o.a)


def test_a_cycle_and_an_unknown_name_fail_as_in_factory_boy() -> None:
    with pytest.raises(errors.CyclicDefinitionError):
        compiled(Cyclic, enums.BUILD_STRATEGY, {}).build()
    with pytest.raises(AttributeError, match="'missing' is unknown"):
        compiled(
            Owner, enums.BUILD_STRATEGY, {"x": factory.LazyAttribute(lambda o: o.missing)}
        ).build()


class ReadsBack(factory.Factory):
    class Meta:
        model = Thing

    owner = factory.SubFactory(Owner, name=factory.SelfAttribute("..owner"))


def test_a_sub_object_reading_its_own_place_back_is_a_cycle_as_in_factory_boy() -> None:
    with pytest.raises(errors.CyclicDefinitionError):
        ReadsBack.build()
    with pytest.raises(errors.CyclicDefinitionError):
        compiled(ReadsBack, enums.BUILD_STRATEGY, {}).build()
