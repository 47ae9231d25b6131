"""Seeding a database with many tenants' rows through the factories, repeatably.

Each tenant is seeded from its own random state (``seed`` and the tenant's number) and its own
sequence range, so the data does not depend on which process seeds which tenant, or in what order:
``--jobs 1`` and ``--jobs 4`` write the same rows. A module's ``seed_tenant(ctx)`` shapes one
tenant's data; without one, every factory of the module gets ``ctx.customers`` rows per tenant.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import factory.random
from sqlalchemy import Engine, MetaData, func, inspect, select
from sqlalchemy.orm import Session

from .engines import engine_for, safe_url
from .errors import SeedError, SeedFailedError, SeedRefusedError, first_line
from .factories import registry_of, rows_where_possible
from .factory_boy_adapter import reset_sequences, shape_of, targets_of
from .scoping import is_tenant_model, spec_for
from .targets import factories_in, load_module, metadata_for
from .tenancy import tenant_context

__all__ = [
    "SEQUENCE_STRIDE",
    "SeedOptions",
    "TenantSeed",
    "count_rows",
    "prepare",
    "seed_tenant",
    "seed_tenants",
]

SEQUENCE_STRIDE = 10_000_000
"""Each tenant's sequences start at ``tenant number * SEQUENCE_STRIDE``: unique across tenants."""
MAX_CUSTOMERS = 500_000
"""Largest ``customers_per_tenant`` whose rows all fit in one tenant's sequence range."""

Report = Callable[[int, str], None]
"""Called with (tenant number, stage) when a tenant finishes a stage."""


@dataclass(frozen=True)
class SeedOptions:
    """One seed run, as plain values a worker process can receive."""

    url: str
    metadata: str | None
    factories: str
    tenants: int
    customers_per_tenant: int
    seed: int
    as_of: dt.date
    first_tenant: int = 0
    shard: tuple[int, int] | None = None
    """``(K, N)``: seed only the tenants whose number is K modulo N (numbered from 0)."""

    def indexes(self) -> list[int]:
        """The numbers of the tenants this run seeds."""
        numbers = range(self.first_tenant, self.first_tenant + self.tenants)
        if self.shard is None:
            return list(numbers)
        mine, shards = self.shard
        return [n for n in numbers if n % shards == mine]


@dataclass
class TenantSeed:
    """What a ``seed_tenant`` hook gets: the tenant's number, its sizes and its random state."""

    index: int
    """The tenant's number, 0 for the first tenant of the database."""
    customers: int
    random: random.Random
    as_of: dt.date
    """The day the data is "now" for (dates are drawn relative to it)."""
    session: Session
    factories: list[Any]
    report: Report = field(repr=False)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """A named step of the tenant's seeding, committed at its end and reported for progress."""
        yield
        self.session.commit()
        self.report(self.index, name)


def seed_tenant(ctx: TenantSeed) -> None:
    """The default hook: a row of each tenant model, then ``ctx.customers`` rows of every other
    factory, inside a ``tenant_context`` of the tenant its rows belong to."""
    tenants: dict[type[Any], Any] = {}
    for factory_cls in ctx.factories:
        if is_tenant_model(factory_cls._meta.model) and factory_cls._meta.model not in tenants:
            with ctx.stage(factory_cls.__name__):
                tenants[factory_cls._meta.model] = factory_cls.create()
    for factory_cls in ctx.factories:
        if factory_cls._meta.model in tenants:
            continue
        spec = spec_for(factory_cls)
        owner = tenants.get(spec.tenant_model) if spec and spec.tenant_model else None
        with ctx.stage(factory_cls.__name__), ExitStack() as stack:
            if owner is not None:
                stack.enter_context(tenant_context(owner))
            factory_cls.create_batch(ctx.customers)


def seed_tenants(options: SeedOptions, indexes: list[int], report: Report) -> None:
    """Seed the tenants numbered ``indexes`` (in this process), each from its own state."""
    module = load_module(options.factories)
    hook: Callable[[TenantSeed], None] = getattr(module, "seed_tenant", seed_tenant)
    factories = _reachable(factories_in(module))
    engine = engine_for(options.url)
    for index in indexes:
        factory.random.reseed_random(f"{options.seed}:{index}")
        reset_sequences(factories, index * SEQUENCE_STRIDE)
        with Session(engine, expire_on_commit=False) as session, ExitStack() as stack:
            for registry in {id(r): r for r in map(registry_of, factories)}.values():
                stack.enter_context(registry.bound(session))
                scope = stack.enter_context(registry.scope())
                stack.callback(registry.forget, scope)  # seeded rows are kept, not tracked
            try:
                with rows_where_possible():  # Core where the hook's calls allow
                    hook(
                        TenantSeed(
                            index=index,
                            customers=options.customers_per_tenant,
                            random=random.Random(f"{options.seed}:{index}"),
                            as_of=options.as_of,
                            session=session,
                            factories=factories,
                            report=report,
                        )
                    )
            except Exception as exc:  # one line naming the tenant, whatever failed
                failure = f"{type(exc).__name__}: {first_line(exc)}"
                raise SeedFailedError(f"tenant {index}: {failure}") from exc
            session.commit()


def prepare(options: SeedOptions, append: bool) -> tuple[SeedOptions, MetaData]:
    """Check the run, create the schema, and number the new tenants after existing ones.

    Refuses (``SeedRefusedError``, before creating anything) when the schema's tables already
    hold rows and ``append`` is false: seeding never deletes or overwrites anything. A sharded
    run numbers its tenants from 0 whatever the database holds (other shards fill it too).
    """
    if options.customers_per_tenant > MAX_CUSTOMERS:
        raise SeedError(
            f"--customers-per-tenant {options.customers_per_tenant}: at most {MAX_CUSTOMERS} "
            "(each tenant's sequence numbers must fit its range). Fix: use more tenants."
        )
    factories = factories_in(load_module(options.factories))
    metadata = metadata_for(options.metadata, factories)
    engine = engine_for(options.url)
    _refuse_other_shapes(engine, metadata)
    counts = count_rows(engine, metadata)
    filled = {name: n for name, n in counts.items() if n}
    if options.shard is not None:
        metadata.create_all(engine)  # creates missing tables only
        return replace(options, first_tenant=0), metadata
    if filled and not append:
        listed = ", ".join(f"{name} ({n} rows)" for name, n in sorted(filled.items()))
        raise SeedRefusedError(
            f"{safe_url(engine)} already holds data: {listed}. seed never deletes anything. "
            "Fix: pass --append to add tenants next to it, or seed an empty database."
        )
    metadata.create_all(engine)  # creates missing tables only
    tenant_tables = [
        f._meta.model.__table__.name for f in factories if is_tenant_model(f._meta.model)
    ]
    existing = max(
        (counts.get(t, 0) for t in tenant_tables), default=max(counts.values(), default=0)
    )
    return replace(options, first_tenant=existing), metadata


def _refuse_other_shapes(engine: Engine, metadata: MetaData) -> None:
    """Tables that exist with other columns than the models' would fail mid-seed: refuse first."""
    inspector = inspect(engine)
    present = set(inspector.get_table_names())
    wrong = []
    for table in metadata.sorted_tables:
        if table.name not in present:
            continue
        found = {c["name"] for c in inspector.get_columns(table.name)}
        missing = sorted(c.name for c in table.columns if c.name not in found)
        if missing:
            wrong.append(f"{table.name} lacks {', '.join(missing)}")
    if wrong:
        raise SeedRefusedError(
            f"{safe_url(engine)} has tables shaped differently from the models: "
            f"{'; '.join(wrong)}. Nothing was written. Fix: migrate the database to the models "
            "(or drop those tables), or seed another database."
        )


def undo(engine: Engine, metadata: MetaData) -> None:
    """Empty the schema's tables after a failed seed of a database that was empty (seed refuses
    any other without --append), so the database is left as it was found."""
    tables = list(reversed(metadata.sorted_tables))
    present = set(inspect(engine).get_table_names())
    tables = [t for t in tables if t.name in present]
    with engine.begin() as connection:
        dialect = engine.dialect.name
        if dialect == "postgresql":
            names = ", ".join(engine.dialect.identifier_preparer.format_table(t) for t in tables)
            connection.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY")
            return
        if dialect == "sqlite":
            connection.exec_driver_sql("PRAGMA defer_foreign_keys=ON")
        elif dialect in ("mysql", "mariadb"):
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=0")
        for table in tables:
            connection.execute(table.delete())
        if dialect in ("mysql", "mariadb"):
            connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS=1")


def count_rows(engine: Engine, metadata: MetaData) -> dict[str, int]:
    """Rows per table of ``metadata`` that exists in the database."""
    present = set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        return {
            table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
            if table.name in present
        }


def _reachable(factories: list[Any]) -> list[Any]:
    """The factories and every factory their declarations and traits build with (so every
    sequence that numbers a tenant's rows is reset)."""
    found = list(factories)
    for factory_cls in found:  # grows while walking
        shape = shape_of(factory_cls)
        values = [*shape.declarations.values()]
        values += [v for overrides in shape.traits.values() for v in overrides.values()]
        for target in (t for value in values for t in targets_of(value)):
            if target.factory not in found:
                found.append(target.factory)
    return found
