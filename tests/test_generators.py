"""DataGenerator, DataProvider and SequenceGenerator: the DotMac generation API."""

from __future__ import annotations

import ipaddress
import threading
from decimal import Decimal
from typing import Any

import pytest

from dotmac_factoryboy.generators import DataGenerator, DataProvider, DataType, SequenceGenerator
from dotmac_factoryboy.providers import VENDOR_OUIS


def test_same_seed_same_sequence_of_values() -> None:
    first, second = DataGenerator(seed=42), DataGenerator(seed=42)
    a = [first.generate(t) for t in DataType for _ in range(3)]
    b = [second.generate(t) for t in DataType for _ in range(3)]
    assert a == b
    assert a != [DataGenerator(seed=43).generate(t) for t in DataType for _ in range(3)]


def test_every_type_and_its_options() -> None:
    g = DataGenerator(seed=1)
    assert "@" in g.generate(DataType.EMAIL)
    assert isinstance(g.generate(DataType.DECIMAL), Decimal)
    assert 5 <= g.generate(DataType.INTEGER, min=5, max=6) <= 6
    assert ipaddress.ip_address(g.generate(DataType.IP_ADDRESS, type="private")).is_private
    assert ipaddress.ip_address(g.generate(DataType.IP_ADDRESS, type="public")).is_global
    assert g.generate(DataType.MAC_ADDRESS, vendor="cisco")[:8] in VENDOR_OUIS["cisco"]
    assert g.generate(DataType.STRING, pattern="service_id").startswith("SRV-")
    assert g.generate(DataType.STRING, pattern="customer_number").startswith("CUST-")
    with pytest.raises(ValueError, match="service_id"):
        g.generate(DataType.STRING, pattern="nope")
    with pytest.raises(ValueError, match="private"):
        g.generate(DataType.IP_ADDRESS, type="carrier")


def test_generate_dict_passes_literals_through() -> None:
    data = DataGenerator(seed=3).generate_dict(
        {"customer_name": DataType.NAME, "is_active": DataType.BOOLEAN, "plan": "professional"}
    )
    assert data["plan"] == "professional" and isinstance(data["is_active"], bool)
    assert isinstance(data["customer_name"], str) and data["customer_name"]


def test_most_recently_added_provider_wins() -> None:
    class Fixed(DataProvider):
        def __init__(self, value: str) -> None:
            self.value = value

        def supports(self, data_type: DataType) -> bool:
            return data_type == DataType.STRING

        def generate(self, data_type: DataType, **kwargs: Any) -> Any:
            return self.value

    g = DataGenerator()
    g.add_provider(Fixed("first"))
    g.add_provider(Fixed("second"))
    assert g.generate(DataType.STRING) == "second"
    assert g.generate(DataType.NAME) != "second"


def test_sequences_per_name_reset_and_thread_safety() -> None:
    seq = SequenceGenerator(start=1000)
    assert [seq.next("invoice") for _ in range(3)] == [1000, 1001, 1002]
    assert seq.next("order") == 1000
    seq.reset("invoice")
    assert seq.next("invoice") == 1000 and seq.next("order") == 1001
    seq.reset()
    values: list[int] = []
    lock = threading.Lock()

    def take() -> None:
        mine = [seq.next("shared") for _ in range(500)]
        with lock:
            values.extend(mine)

    threads = [threading.Thread(target=take) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(values) == list(range(1000, 5000))
    assert DataGenerator().next_sequence("x") == 1
