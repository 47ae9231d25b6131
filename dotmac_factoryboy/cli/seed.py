"""``dotmac-factoryboy seed``: an empty database becomes a realistic multi-tenant dataset."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import queue
import secrets
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn
from rich.table import Table

from ..engines import engine_for, in_memory, safe_url
from ..errors import SeedFailedError
from ..seeding import SeedOptions, count_rows, prepare, seed_tenants, undo
from .options import factories_option, metadata_option, one_line_errors


class ShardType(click.ParamType):  # type: ignore[type-arg]
    """``K/N`` with 0 <= K < N."""

    name = "shard"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, tuple):
            return value
        try:
            mine, shards = (int(part) for part in str(value).split("/"))
        except ValueError:
            self.fail(f"{value!r} is not K/N (two whole numbers, e.g. 0/4).", param, ctx)
        if not 0 <= mine < shards:
            self.fail(
                f"{value!r}: K must be at least 0 and less than N (0/{shards} to "
                f"{max(shards - 1, 0)}/{shards}).",
                param,
                ctx,
            )
        return (mine, shards)


@click.command()
@click.option("--url", default="sqlite:///isp_demo.db", show_default=True, help="SQLAlchemy URL.")
@click.option("--tenants", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--customers-per-tenant", type=click.IntRange(min=0), default=1000, show_default=True)
@click.option("--seed", "seed_value", type=click.IntRange(min=0), help="Default: random, printed.")
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Tenants seeded in parallel worker processes.",
)
@metadata_option
@factories_option
@click.option("--append", is_flag=True, help="Add tenants to a database that holds rows.")
@click.option(
    "--shard",
    type=ShardType(),
    default=None,
    metavar="K/N",
    help="Seed only the tenants whose number is K modulo N, with exactly the data a run "
    "without --shard gives them: N machines or CI jobs fill one database together.",
)
@click.option(
    "--as-of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The day the data is 'now' for (default: today).",
)
def seed(
    url: str,
    tenants: int,
    customers_per_tenant: int,
    seed_value: int | None,
    jobs: int,
    metadata: str | None,
    factories_module: str,
    append: bool,
    shard: tuple[int, int] | None,
    as_of: dt.datetime | None,
) -> None:
    """Create the schema and seed TENANTS tenants through the factories."""
    if shard is not None and append:
        raise click.UsageError(
            "--shard numbers tenants from 0 and --append after the rows already there: use one."
        )
    mine = len(range(shard[0], tenants, shard[1])) if shard else tenants
    if jobs > max(mine, 1):
        which = f"the {mine} tenants of --shard {shard[0]}/{shard[1]}" if shard else "--tenants"
        raise click.UsageError(
            f"--jobs {jobs} is more than {which} {'' if shard else tenants}".rstrip()
            + f": use at most {max(mine, 1)}."
        )
    if jobs > 1 and in_memory(url):
        raise click.UsageError(
            f"--url {url}: worker processes cannot share an in-memory database. Fix: a file or "
            "server URL, or --jobs 1."
        )
    options = SeedOptions(
        url=url,
        metadata=metadata,
        factories=factories_module,
        tenants=tenants,
        customers_per_tenant=customers_per_tenant,
        seed=secrets.randbelow(2**31) if seed_value is None else seed_value,
        as_of=(as_of.date() if as_of else dt.date.today()),
        shard=shard,
    )
    console = Console(stderr=True)
    with one_line_errors():
        options, schema = prepare(options, append)
        engine = engine_for(url)
        before = count_rows(engine, schema)
        which = f"shard {shard[0]}/{shard[1]} of " if shard else ""
        console.print(
            f"Seeding {which}{tenants} tenants x {customers_per_tenant} customers into "
            f"{safe_url(engine)} with --seed {options.seed} "
            f"--as-of {options.as_of}",
            soft_wrap=True,
            highlight=False,
        )
        started = time.perf_counter()
        try:
            _run(options, jobs, console)
        except SeedFailedError as exc:
            if shard is not None:  # other shards write here too: never undo
                raise SeedFailedError(
                    f"{exc} This shard's tenants seeded before it stay; nothing else was touched."
                ) from exc
            if any(before.values()):  # --append: the tenants seeded before the failure stay
                raise SeedFailedError(
                    f"{exc} Tenants seeded before it (from {options.first_tenant} on) stay; "
                    "the rows that were there before are untouched."
                ) from exc
            undo(engine, schema)  # it was empty: leave it empty
            raise SeedFailedError(f"{exc} Nothing was kept: the database is empty again.") from exc
        elapsed = time.perf_counter() - started
        after = count_rows(engine, schema)
    _summary(before, after, elapsed, options)


def _run(options: SeedOptions, jobs: int, console: Console) -> None:
    """Seed every tenant (in ``jobs`` processes), one progress bar per stage."""
    indexes = options.indexes()
    with Progress(
        TextColumn("{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("tenants"),
        console=console,
    ) as progress:
        bars: dict[str, TaskID] = {}

        def report(_index: int, stage: str) -> None:
            if stage not in bars:
                bars[stage] = progress.add_task(stage, total=len(indexes))
            progress.advance(bars[stage])

        if jobs == 1:
            seed_tenants(options, indexes, report)
            return
        context = multiprocessing.get_context("spawn")
        with context.Manager() as manager:
            events: Any = manager.Queue()
            with ProcessPoolExecutor(jobs, mp_context=context) as pool:
                pending: set[Future[None]] = {
                    pool.submit(_worker, options, index, events) for index in indexes
                }
                while pending:
                    done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                    _drain(events, report)
                    failed = [f for f in done if f.exception() is not None]
                    if failed:  # stop the tenants not started yet, report the first failure
                        for future in pending:
                            future.cancel()
                        failed[0].result()
                _drain(events, report)


def _worker(options: SeedOptions, index: int, events: Any) -> None:
    """One tenant in a worker process (its errors come back as one-line ``SeedError``s)."""
    seed_tenants(options, [index], lambda i, stage: events.put((i, stage)))


def _drain(events: Any, report: Any) -> None:
    while True:
        try:
            report(*events.get_nowait())
        except queue.Empty:
            return


def _summary(
    before: dict[str, int], after: dict[str, int], elapsed: float, options: SeedOptions
) -> None:
    table = Table("table", "rows", "added", title="Rows per table")
    for name, rows in after.items():
        table.add_row(name, str(rows), str(rows - before.get(name, 0)))
    added = sum(after.values()) - sum(before.values())
    console = Console()
    console.print(table)
    console.print(
        f"{added} rows in {elapsed:.1f} s ({added / elapsed if elapsed else 0:,.0f} rows/s); "
        f"repeat with --seed {options.seed} --as-of {options.as_of}"
        + (f" --shard {options.shard[0]}/{options.shard[1]}" if options.shard else ""),
        soft_wrap=True,
        highlight=False,
    )
