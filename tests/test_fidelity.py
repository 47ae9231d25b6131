"""Drop-in fidelity: the same declarations built by factory_boy's SQLAlchemyModelFactory and by
ours give the same objects, the same errors and the same log lines.

Each case defines its factories twice from one function (declarations are made anew per base, so
no Iterator or counter is shared), builds both with the same seed and compares the objects
field by field. The schema is a small library of its own, with a self-reference.
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from typing import Any

import factory
import pytest
from factory import errors
from factory.alchemy import SQLAlchemyModelFactory
from factory.random import reseed_random
from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory
from dotmac_factoryboy.errors import UnknownFieldError


class Base(DeclarativeBase):
    pass


class Writer(Base):
    __tablename__ = "fid_writers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    email: Mapped[str | None] = mapped_column(String(120))
    loud: Mapped[bool] = mapped_column(default=False)
    resolve: Mapped[str | None] = mapped_column(String(40))
    mentor_id: Mapped[int | None] = mapped_column(ForeignKey("fid_writers.id"))
    mentor: Mapped[Writer | None] = relationship(remote_side=[id])


class Volume(Base):
    __tablename__ = "fid_volumes"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    kind: Mapped[str] = mapped_column(String(20), default="novel")
    meta: Mapped[Any] = mapped_column(JSON, default=dict)
    note: Mapped[str | None] = mapped_column(String(80))
    writer_id: Mapped[int | None] = mapped_column(ForeignKey("fid_writers.id"))
    writer: Mapped[Writer | None] = relationship()


BASES: dict[str, type[Any]] = {"factory_boy": SQLAlchemyModelFactory, "ours": SQLAlchemyFactory}


def meta(model: type[Any], **options: Any) -> type:
    """A Meta for either base (ours registers nothing: the suite defines twins per model)."""
    return type("Meta", (), {"model": model, **options})


def make(base: type[Any], name: str, model: type[Any], body: dict[str, Any], **options: Any) -> Any:
    """``name`` on ``base``; ours in a registry of its own, so no session is bound for it."""
    extra = {"registry": FactoryRegistry()} if base is SQLAlchemyFactory else {}
    return type(name, (base,), {"Meta": meta(model, **options, **extra), **body})


def snapshot(value: Any, depth: int = 0) -> Any:
    """Mapped objects as plain nested data: columns, then relationships, a few levels deep."""
    if isinstance(value, Base) and depth < 4:
        columns = {c.key: getattr(value, c.key) for c in value.__table__.columns}
        related = {
            k: snapshot(getattr(value, k), depth + 1)
            for k in ("writer", "mentor")
            if hasattr(value, k)
        }
        return {"type": type(value).__name__, **columns, **related}
    if isinstance(value, factory.base.StubObject) or (
        dataclasses.is_dataclass(value) and not isinstance(value, type)
    ):
        return {k: snapshot(v, depth + 1) for k, v in vars(value).items()}
    if isinstance(value, list):
        return [snapshot(v, depth) for v in value]
    return value


def both(factories: Callable[[type[Any]], Any], call: Callable[[Any], Any]) -> dict[str, Any]:
    """``call`` on the factories built for each base, with one seed; the snapshots by base."""
    out = {}
    for label, base in BASES.items():
        made = factories(base)
        reseed_random(1234)
        out[label] = snapshot(call(made))
    return out


def same(factories: Callable[[type[Any]], Any], call: Callable[[Any], Any]) -> Any:
    found = both(factories, call)
    assert found["ours"] == found["factory_boy"]
    return found["ours"]


def errors_of(factories: Callable[[type[Any]], Any], call: Callable[[Any], Any]) -> list[Any]:
    """The exception each base raises for ``call``: (type, message)."""
    out = []
    for base in BASES.values():
        made = factories(base)
        with pytest.raises(Exception) as info:
            call(made)
        out.append(info.value)
    return out


# -- 1. nested keywords whose head is not a place --------------------------------------------


def tagged_volumes(base: type[Any]) -> Any:
    @factory.post_generation
    def tagged(obj: Volume, create: bool, extracted: Any, **kwargs: Any) -> None:
        obj.note = f"{extracted}{kwargs.get('suffix', '')}"

    body = {
        "title": factory.Sequence(lambda n: f"V{n}"),
        "meta": factory.Dict({"a": 1, "b": factory.Sequence(int)}),
        "tagged": tagged,
    }
    return make(base, "VolumeF", Volume, body)


@pytest.mark.parametrize(
    "keywords",
    [{"tagged__suffix": "!"}, {"tagged": "x", "tagged__suffix": "?"}, {"meta__a": 2}],
    ids=["post-generation extra", "extracted and extra", "Dict item"],
)
def test_nested_keywords_past_the_places_build_as_in_factory_boy(keywords: dict[str, Any]) -> None:
    for _ in range(2):  # the second call of a shape goes through the plan's reuse path
        found = same(tagged_volumes, lambda f: f.build(**keywords))
        assert found["note"] is not None or found["meta"]["a"] == 2


class FactoryBoyNode(SQLAlchemyModelFactory):
    class Meta:
        model = Writer

    name = factory.Sequence(lambda n: f"N{n}")
    mentor = factory.SubFactory("tests.test_fidelity.FactoryBoyNode")


class OurNode(SQLAlchemyFactory[Writer]):
    class Meta:
        model = Writer
        register = False

    name = factory.Sequence(lambda n: f"N{n}")
    mentor = factory.SubFactory("tests.test_fidelity.OurNode")


NODES = {SQLAlchemyModelFactory: FactoryBoyNode, SQLAlchemyFactory: OurNode}


def test_self_reference_keywords_deeper_than_the_walk() -> None:
    keywords = {"mentor__mentor__mentor": None}
    for _ in range(2):
        found = same(NODES.__getitem__, lambda f: f.build(**keywords))
    assert found["mentor"]["mentor"]["mentor"] is None


# -- 2. __sequence -------------------------------------------------------------------------


def test_forced_sequence_is_accepted() -> None:
    found = same(tagged_volumes, lambda f: f.build(__sequence=42))
    assert found["title"] == "V42"


# -- 3. a subclass's _generate is honoured --------------------------------------------------


@pytest.mark.parametrize("method", ["create", "build", "stub", "create_batch", "build_batch"])
def test_generate_override_sees_every_call(method: str) -> None:
    seen: dict[str, list[str]] = {}

    def recording(base: type[Any]) -> Any:
        calls = seen.setdefault(base.__name__, [])

        @classmethod  # type: ignore[misc]
        def _generate(cls: Any, strategy: str, params: dict[str, Any]) -> Any:
            calls.append(strategy)
            return super(made, cls)._generate(strategy, params)

        @classmethod  # type: ignore[misc]
        def _create(cls: Any, model_class: Any, *args: Any, **kwargs: Any) -> Any:
            return model_class(*args, **kwargs)  # no session needed

        body = {"name": factory.Sequence(lambda n: f"W{n}"), "_generate": _generate}
        made = make(base, "RecordingF", Writer, {**body, "_create": _create})
        return made

    def call(f: Any) -> Any:
        action = getattr(f, method)
        return action(2) if method.endswith("batch") else action()

    both(recording, lambda f: [snapshot(o) for o in _listed(call(f))])
    assert seen["SQLAlchemyFactory"] == seen["SQLAlchemyModelFactory"]
    assert seen["SQLAlchemyFactory"]


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


# -- 4. SubFactory of a model -----------------------------------------------------------------


def test_subfactory_of_a_model_raises_factory_boys_error() -> None:
    def pointing_at_model(base: type[Any]) -> Any:
        return make(base, "VolumeF", Volume, {"writer": factory.SubFactory(Writer)})

    found = errors_of(pointing_at_model, lambda f: f.build())
    assert [type(e) for e in found] == [errors.AssociatedClassError] * 2
    assert all("Writer" in str(e) and "VolumeF" in str(e) for e in found)


# -- 5. subclasses of the declarations the builder shortcuts --------------------------------


class ShoutingFaker(factory.Faker):
    def evaluate(self, instance: Any, step: Any, extra: dict[str, Any]) -> Any:
        return str(super().evaluate(instance, step, extra)).upper()


class NamedSubFactory(factory.SubFactory):
    def evaluate(self, instance: Any, step: Any, extra: dict[str, Any]) -> Any:
        made = super().evaluate(instance, step, extra)
        made.email = "from-subclass@example.test"
        return made


def test_subclassed_declarations_run_their_own_evaluate() -> None:
    def shouting(base: type[Any]) -> Any:
        writer = make(base, "WriterF", Writer, {"name": factory.Faker("name")})
        body = {"title": ShoutingFaker("sentence"), "writer": NamedSubFactory(writer)}
        return make(base, "VolumeF", Volume, body)

    found = same(shouting, lambda f: f.build())
    assert found["title"] == found["title"].upper()
    assert found["writer"]["email"] == "from-subclass@example.test"


def test_a_faker_registry_entry_with_only_format_is_used() -> None:
    class FormatOnly:
        locales = ["xx_XX"]

        def format(self, provider: str, **kwargs: Any) -> str:
            return f"<{provider}>"

    registry = factory.Faker._FAKER_REGISTRY
    registry["xx_XX"] = FormatOnly()
    try:

        def fixed(base: type[Any]) -> Any:
            return make(base, "WriterF", Writer, {"name": factory.Faker("name", locale="xx_XX")})

        assert same(fixed, lambda f: f.build())["name"] == "<name>"
    finally:
        del registry["xx_XX"]


# -- 6. trait flags whose value is a declaration ---------------------------------------------


def shouty_writers(base: type[Any]) -> Any:
    class Params:
        shouty = factory.Trait(name="LOUD")
        big = factory.Trait(shouty=factory.SelfAttribute("is_big"))
        is_big = False

    body = {"Params": Params, "name": "plain", "email": factory.Sequence(lambda n: f"{n}@x.test")}
    return make(base, "WriterF", Writer, body)


def shouty_volumes(base: type[Any]) -> Any:
    body = {
        "title": factory.Sequence(lambda n: f"V{n}"),
        "kind": factory.Iterator(["novel", "essay"]),
        "writer": factory.SubFactory(shouty_writers(base), shouty=factory.SelfAttribute("..loud")),
        "loud": True,
    }
    return make(base, "VolumeF", Volume, body, exclude=("loud",))


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda f: f.build(shouty=factory.LazyAttribute(lambda o: o.email.startswith("0"))), None),
        (lambda f: f.build_batch(3, shouty=factory.Iterator([True, False])), None),
        (lambda f: f.build(big=True), "plain"),
        (lambda f: f.build(big=True, is_big=True), "LOUD"),
        (lambda f: f.build(shouty=True), "LOUD"),
    ],
    ids=[
        "LazyAttribute",
        "Iterator per object",
        "trait sets flag to SelfAttribute",
        "...true",
        "plain",
    ],
)
def test_trait_flags_decided_per_object(call: Callable[[Any], Any], expected: str | None) -> None:
    found = same(shouty_writers, call)
    if expected is not None:
        assert found["name"] == expected
    if isinstance(found, list):
        assert [w["name"] for w in found] == ["LOUD", "plain", "LOUD"]


def test_trait_flag_from_a_parent_selfattribute() -> None:
    found = same(shouty_volumes, lambda f: f.build())
    assert found["writer"]["name"] == "LOUD"
    found = same(shouty_volumes, lambda f: f.build(loud=False))
    assert found["writer"]["name"] == "plain"


# -- 7. Maybe between two SubFactories -------------------------------------------------------


def maybe_volumes(base: type[Any]) -> Any:
    class Shiny:
        shiny = factory.Trait(email="shiny@x.test")

    body = {"Params": Shiny, "name": "Fancy", "email": "fancy@x.test"}
    fancy = make(base, "FancyF", Writer, body)
    plain = make(base, "PlainF", Writer, {"name": "Plain", "email": "plain@x.test"})

    class Params:
        fancy = True

    body = {
        "Params": Params,
        "title": "T",
        "writer": factory.Maybe(
            "fancy", factory.SubFactory(fancy), factory.SubFactory(plain, name="Plainer")
        ),
    }
    return make(base, "VolumeF", Volume, body)


@pytest.mark.parametrize(
    ("keywords", "email"),
    [
        ({}, "fancy@x.test"),
        ({"fancy": False}, "plain@x.test"),
        ({"fancy": True, "writer__name": "N"}, "fancy@x.test"),
        ({"fancy": False, "writer__name": "N"}, "plain@x.test"),
        ({"fancy": factory.LazyAttribute(lambda o: o.title == "T")}, "fancy@x.test"),
    ],
)
def test_maybe_between_two_subfactories(keywords: dict[str, Any], email: str) -> None:
    found = same(maybe_volumes, lambda f: f.build(**keywords))
    assert found["writer"]["email"] == email


# -- 8. the resolver --------------------------------------------------------------------------


def test_a_field_named_resolve_reads_its_value() -> None:
    def resolving(base: type[Any]) -> Any:
        body = {"resolve": "mine", "name": factory.SelfAttribute("resolve")}
        return make(base, "WriterF", Writer, body)

    assert same(resolving, lambda f: f.build())["name"] == "mine"


def test_the_resolver_is_read_only() -> None:
    def assigning(base: type[Any]) -> Any:
        body = {"email": "e", "name": factory.LazyAttribute(lambda o: setattr(o, "email", "x"))}
        return make(base, "WriterF", Writer, body)

    found = errors_of(assigning, lambda f: f.build())
    assert [(type(e), str(e)) for e in found] == [
        (AttributeError, "Setting of object attributes is not allowed")
    ] * 2


# -- 9. factory.debug() ------------------------------------------------------------------------


def test_debug_logs_every_declaration() -> None:
    logged = {}
    for label, base in BASES.items():
        writer = make(base, "WriterF", Writer, {"name": factory.Sequence(str)})
        body = {
            "title": factory.LazyFunction(lambda: "t"),
            "writer": factory.SubFactory(writer),
        }
        volume = make(base, "VolumeF", Volume, body)
        stream = io.StringIO()
        with factory.debug(stream=stream):
            volume.build()
        logged[label] = sorted(line.split(":")[0] for line in stream.getvalue().splitlines())
    assert logged["ours"] == logged["factory_boy"]
    assert {"LazyFunction", "Sequence", "SubFactory"} <= set(logged["ours"])


# -- 10. Meta.exclude ---------------------------------------------------------------------------


def test_excluded_names_are_keywords() -> None:
    def excluding(base: type[Any]) -> Any:
        body = {"title": factory.Maybe("flag", "yes", "no")}
        return make(base, "VolumeF", Volume, body, exclude=("flag",))

    assert same(excluding, lambda f: f.build(flag=True))["title"] == "yes"


# -- 11. models that are not mapped ---------------------------------------------------------------


@dataclasses.dataclass
class Address:
    street: str
    city: str = "Paris"


@dataclasses.dataclass
class Person:
    name: str
    address: Address


class Loose:
    """A plain class that takes any keyword."""

    def __init__(self, **kwargs: Any) -> None:
        vars(self).update(kwargs)


def people(base: type[Any], **hooks: Any) -> Any:
    body = {"street": factory.Faker("street_name"), **hooks}
    address = make(base, "AddressF", Address, body)
    body = {"name": factory.Faker("name"), "address": factory.SubFactory(address), **hooks}
    return make(base, "PersonF", Person, body)


@pytest.mark.parametrize("method", ["build", "stub"])
def test_dataclasses_build_without_a_session(method: str) -> None:
    found = same(people, lambda f: getattr(f, method)(address__city="Lyon"))
    if method == "build":
        assert found["address"]["city"] == "Lyon"


@classmethod  # type: ignore[misc]
def _create_by_calling(cls: Any, model_class: Any, *args: Any, **kwargs: Any) -> Any:
    return model_class(*args, **kwargs)


def test_create_with_an_own_create_needs_no_session() -> None:
    def own_create(base: type[Any]) -> Any:
        return people(base, _create=_create_by_calling)

    assert same(own_create, lambda f: f.create())["address"]["city"] == "Paris"


def test_unknown_names_on_a_dataclass_fail_at_plan_time() -> None:
    with pytest.raises(UnknownFieldError, match=r"PersonF: unknown field 'nmae'.*'name'"):
        people(SQLAlchemyFactory).build(nmae="x")


def test_a_class_taking_any_keyword_takes_any_keyword() -> None:
    def loose(base: type[Any]) -> Any:
        return make(base, "LooseF", Loose, {"a": 1})

    for base in BASES.values():
        assert vars(loose(base).build(anything=2)) == {"a": 1, "anything": 2}


def test_create_on_our_create_without_a_session_says_so() -> None:
    from dotmac_factoryboy.errors import ConfigurationError

    alone = make(SQLAlchemyFactory, "PersonF", Person, {"name": "x"})
    with pytest.raises(ConfigurationError, match=r"PersonF.create\(\) has no SQLAlchemy session"):
        alone.create(address=Address("s"))


# -- 12. calls that share a plan and a parse ---------------------------------------------------


def empty_subclass(factory_cls: Any) -> Any:
    """What pytest-factoryboy's model fixture calls: an empty subclass whose post-generation
    declarations are taken out (it runs them itself, later)."""
    sub = type("Factory", (factory_cls,), {})
    sub._meta.base_declarations = {
        k: v
        for k, v in sub._meta.base_declarations.items()
        if not isinstance(v, factory.declarations.PostGenerationDeclaration)
    }
    sub._meta.post_declarations = factory.builder.DeclarationSet()
    return sub


def noted_library(base: type[Any]) -> Any:
    writer = make(base, "WriterF", Writer, {"name": factory.Sequence(lambda n: f"W{n}")})

    @factory.post_generation
    def noted(obj: Volume, create: bool, extracted: Any, **kwargs: Any) -> None:
        obj.note = f"noted {extracted}"

    body = {
        "title": factory.Faker("sentence", nb_words=2),
        "writer": factory.SubFactory(writer),
        "noted": noted,
    }
    return writer, make(base, "VolumeF", Volume, body)


def test_repeated_calls_with_rows_and_empty_subclasses_build_as_in_factory_boy() -> None:
    """Calls of one shape share a walk and a parse: each still gets its own rows, values,
    sequence and class (an empty subclass without the hook does not run it; the parent does)."""

    def calls(made: Any) -> list[Any]:
        writer_f, volume_f = made
        writers = [writer_f.build(), writer_f.build(name="given")]
        out: list[Any] = [*writers]
        for round_ in range(3):
            for writer in writers:
                sub = empty_subclass(volume_f)
                out.append(sub.build(writer=writer, title=f"T{round_}"))
                out.append(
                    sub.build(writer=writer, title=volume_f._meta.base_declarations["title"])
                )
            out.append(volume_f.build(writer=writers[round_ % 2], noted=round_))
            out.append(volume_f.build(writer__name=f"nested {round_}"))
        return out

    built = same(noted_library, calls)
    subs = [v for start in (2, 8, 14) for v in built[start : start + 4]]
    assert [v["note"] for v in subs] == [None] * 12
    assert [built[i]["note"] for i in (6, 7, 12)] == ["noted 0", "noted None", "noted 1"]
    assert [v["writer"]["name"] for v in built[2:6]] == ["W0", "W0", "given", "given"]
    assert [v["title"] for v in built[2:4]] == ["T0", built[3]["title"]] and built[3][
        "title"
    ] != "T0"


def test_an_option_set_on_an_empty_subclass_is_its_own() -> None:
    """An empty subclass whose Meta options were edited after it was made does not share its
    parent's plan: here the edit is the model's ``kind`` default, through ``rename``."""

    def calls(made: Any) -> list[Any]:
        _, volume_f = made
        sub = empty_subclass(volume_f)
        sub._meta.rename = {"category": "kind"}
        return [volume_f.build(title="a"), sub.build(title="b", category="essay")]

    built = same(noted_library, calls)
    assert [v["kind"] for v in built] == [None, "essay"]


def test_a_transformer_takes_every_calls_own_value_as_in_factory_boy() -> None:
    """A Transformer captures the value it is overridden with when the call is parsed: calls of
    one shape with other values must not share that parse."""

    def shouting(base: type[Any]) -> Any:
        body = {"name": factory.Transformer("quiet", transform=str.upper)}
        return make(base, "WriterF", Writer, body)

    def calls(made: Any) -> list[Any]:
        return [made.build(name=n) for n in ("ann", "bob", "cy")] + [
            made.build(name=factory.Transformer.Force("kept")),
            made.build(),
        ]

    built = same(shouting, calls)
    assert [w["name"] for w in built] == ["ANN", "BOB", "CY", "kept", "QUIET"]


def test_equal_but_different_values_for_a_hook_keep_their_own_parse() -> None:
    """A value for a post-generation name is kept in the parse; 0.0 and -0.0 are equal but not
    the same value, so calls with each must not share it."""

    def calls(made: Any) -> list[Any]:
        _, volume_f = made
        return [volume_f.build(noted=v) for v in (0.0, -0.0, 0.0)]

    built = same(noted_library, calls)
    assert [v["note"] for v in built] == ["noted 0.0", "noted -0.0", "noted 0.0"]
