"""Registering factories the way real suites define them: several factories per model, variants
in other registries, and lookups by model that must pick one (a schema of its own, keyed by a
string slug)."""

from __future__ import annotations

import pytest
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from dotmac_factoryboy import FactoryRegistry, SQLAlchemyFactory, TenantIsolatedFactory
from dotmac_factoryboy.errors import ConfigurationError


class Base(DeclarativeBase):
    pass


class Board(Base):
    __tablename__ = "reg_boards"
    slug: Mapped[str] = mapped_column(String(40), primary_key=True)


class Card(Base):
    __tablename__ = "reg_cards"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80))
    board_slug: Mapped[str] = mapped_column(ForeignKey("reg_boards.slug"))
    board: Mapped[Board] = relationship()


def test_two_factories_for_one_model_both_register() -> None:
    reg = FactoryRegistry()

    class CardFactory(SQLAlchemyFactory[Card]):
        class Meta:
            model = Card
            registry = reg

    class UrgentCardFactory(SQLAlchemyFactory[Card]):
        class Meta:
            model = Card
            registry = reg

    assert reg.get_factory("card_factory") is CardFactory
    assert reg.get_factory("urgent_card_factory") is UrgentCardFactory
    assert reg.factory_for(Card) is CardFactory


def test_the_model_named_factory_takes_the_model_name_whatever_the_order() -> None:
    reg = FactoryRegistry()

    class PinnedCardFactory(SQLAlchemyFactory[Card]):
        class Meta:
            model = Card
            registry = reg

    assert reg.get_factory("card_factory") is PinnedCardFactory  # the first defined, for now

    class CardFactory(SQLAlchemyFactory[Card]):
        class Meta:
            model = Card
            registry = reg

    assert reg.get_factory("card_factory") is CardFactory
    assert reg.get_factory("pinned_card_factory") is PinnedCardFactory
    assert reg.factory_for(Card) is CardFactory


def test_without_a_model_named_factory_the_first_keeps_the_model_name() -> None:
    reg = FactoryRegistry()

    class StandardFactory(SQLAlchemyFactory[Card]):
        class Meta:
            model = Card
            registry = reg

    class NoSessionFactory(SQLAlchemyFactory[Card]):
        class Meta:
            model = Card
            registry = reg

    assert reg.factory_for(Card) is StandardFactory
    assert reg.names() == ["card_factory", "no_session_factory"]


def test_two_factories_deriving_one_name_is_an_error_naming_both() -> None:
    reg = FactoryRegistry()

    def define() -> type:
        class CardFactory(SQLAlchemyFactory[Card]):
            class Meta:
                model = Card
                registry = reg

        return CardFactory

    first = define()
    first_again = define()  # the same definition again (a module imported anew) replaces itself
    assert reg.get_factory("card_factory") is first_again is not first

    with pytest.raises(ConfigurationError) as info:

        class CardFactory(SQLAlchemyFactory[Card]):
            class Meta:
                model = Card
                registry = reg

    message = str(info.value)
    assert "'card_factory'" in message and message.count("CardFactory") >= 2
    assert "Meta.register = False" in message


def test_a_subclass_naming_a_registry_registers_there() -> None:
    first, second = FactoryRegistry(), FactoryRegistry()

    class CardFactory(SQLAlchemyFactory[Card]):
        class Meta:
            model = Card
            registry = first

    class OtherCardFactory(CardFactory):
        class Meta:
            registry = second

    class Throwaway(CardFactory):  # inherits model and registry: a variant, not registered
        pass

    assert second.get_factory("card_factory") is OtherCardFactory
    assert first.names() == ["card_factory"]
    assert first.get_factory("card_factory") is CardFactory
    assert Throwaway not in first.factories.values()


def test_a_tenant_lookup_that_cannot_pick_names_the_candidates() -> None:
    reg = FactoryRegistry()

    class OpenBoardFactory(SQLAlchemyFactory[Board]):
        class Meta:
            model = Board
            registry = reg
            register = False

    class ArchivedBoardFactory(SQLAlchemyFactory[Board]):
        class Meta:
            model = Board
            registry = reg
            register = False

    reg.register_factory(OpenBoardFactory, "open_board_factory")
    reg.register_factory(ArchivedBoardFactory, "archived_board_factory")

    class CardFactory(TenantIsolatedFactory[Card]):
        class Meta:
            model = Card
            registry = reg
            tenant_field = "board_slug"

        title = "t"

    with pytest.raises(ConfigurationError) as info:
        CardFactory.build()
    message = str(info.value)
    assert "open_board_factory" in message and "archived_board_factory" in message
    assert "Meta.tenant_factory" in message
