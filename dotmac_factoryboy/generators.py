"""DataGenerator: the DotMac data-generation API (typed values, schemas, sequences) on Faker."""

from __future__ import annotations

import datetime as dt
import enum
import threading
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from faker import Faker

from .providers import ISPProvider

EPOCH = dt.datetime(2000, 1, 1)
HORIZON = dt.datetime(2030, 12, 31)
"""DATE and DATETIME values lie in this fixed range, never one ending "now": the same seed gives
the same data on every day."""


class DataType(enum.Enum):
    """Kinds of value ``DataGenerator.generate`` knows how to make."""

    NAME = "name"
    EMAIL = "email"
    COMPANY = "company"
    PHONE = "phone"
    ADDRESS = "address"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"
    INTEGER = "integer"
    DECIMAL = "decimal"
    STRING = "string"
    TEXT = "text"
    UUID = "uuid"
    IP_ADDRESS = "ip_address"
    MAC_ADDRESS = "mac_address"


class DataProvider(ABC):
    """A pluggable source of values; the most recently added one that supports a type wins."""

    @abstractmethod
    def supports(self, data_type: DataType) -> bool:
        """Whether this provider generates ``data_type``."""

    @abstractmethod
    def generate(self, data_type: DataType, **options: Any) -> Any:
        """One value of ``data_type``."""


class SequenceGenerator:
    """Thread-safe counters per name: ``next("invoice")`` -> start, start + 1, ..."""

    def __init__(self, start: int = 1) -> None:
        self.start = start
        self._next: defaultdict[str, int] = defaultdict(lambda: self.start)
        self._lock = threading.Lock()

    def next(self, name: str) -> int:
        """The next value of the named sequence."""
        with self._lock:
            value = self._next[name]
            self._next[name] = value + 1
            return value

    def reset(self, name: str | None = None) -> None:
        """Restart one sequence, or all of them."""
        with self._lock:
            if name is None:
                self._next.clear()
            else:
                self._next.pop(name, None)


STRING_PATTERNS = (
    "service_id",
    "customer_number",
    "account_number",
    "invoice_number",
    "serial_number",
)


class DataGenerator:
    """Realistic values by ``DataType``; the same seed gives the same sequence of values."""

    def __init__(self, seed: int | None = None, locale: str = "en_US") -> None:
        self.faker = Faker(locale)
        self.faker.add_provider(ISPProvider)
        if seed is not None:
            self.faker.seed_instance(seed)
        self.sequences = SequenceGenerator()
        self._providers: list[DataProvider] = []

    def add_provider(self, provider: DataProvider) -> None:
        """Add a provider; it takes precedence over those added before it."""
        self._providers.append(provider)

    def next_sequence(self, name: str) -> int:
        """The next value of the named sequence."""
        return self.sequences.next(name)

    def generate_dict(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        """Generate ``DataType`` values of ``schema``; anything else passes through literally."""
        return {k: self.generate(v) if isinstance(v, DataType) else v for k, v in schema.items()}

    def generate(self, data_type: DataType, **options: Any) -> Any:
        """One value of ``data_type``."""
        for provider in reversed(self._providers):
            if provider.supports(data_type):
                return provider.generate(data_type, **options)
        return self._builtin[data_type](options)

    @property
    def _builtin(self) -> dict[DataType, Callable[[dict[str, Any]], Any]]:
        f = self.faker
        return {
            DataType.NAME: lambda o: f.name(),
            DataType.EMAIL: lambda o: f.email(),
            DataType.COMPANY: lambda o: f.company(),
            DataType.PHONE: lambda o: f.phone_number(),
            DataType.ADDRESS: lambda o: f.address(),
            DataType.DATE: lambda o: f.date_between_dates(EPOCH.date(), HORIZON.date()),
            DataType.DATETIME: lambda o: f.date_time_between_dates(EPOCH, HORIZON),
            DataType.BOOLEAN: lambda o: f.pybool(),
            DataType.INTEGER: lambda o: f.random_int(o.get("min", 0), o.get("max", 9999)),
            DataType.DECIMAL: lambda o: f.pydecimal(
                left_digits=o.get("left_digits", 4),
                right_digits=o.get("right_digits", 2),
                positive=o.get("positive", True),
            ),
            DataType.STRING: self._string,
            DataType.TEXT: lambda o: f.text(max_nb_chars=o.get("max_chars", 200)),
            DataType.UUID: lambda o: f.uuid4(),
            DataType.IP_ADDRESS: self._ip_address,
            DataType.MAC_ADDRESS: lambda o: (
                f.mac_address_vendor(o["vendor"]) if o.get("vendor") else f.mac_address()
            ),
        }

    def _string(self, options: dict[str, Any]) -> str:
        pattern = options.get("pattern")
        if pattern is None:
            return str(self.faker.pystr(max_chars=options.get("length", 20)))
        if pattern not in STRING_PATTERNS:
            raise ValueError(
                f"Unknown STRING pattern {pattern!r}; known patterns: {', '.join(STRING_PATTERNS)}."
            )
        return str(getattr(self.faker, pattern)())

    def _ip_address(self, options: dict[str, Any]) -> str:
        kind = options.get("type", "private")
        if kind not in ("private", "public"):
            raise ValueError(f"Unknown IP_ADDRESS type {kind!r}; use 'private' or 'public'.")
        return str(self.faker.private_ipv4() if kind == "private" else self.faker.public_ipv4())
