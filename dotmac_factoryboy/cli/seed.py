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
    as_of: dt.datetime | None,
) -> None:
    """Create the schema and seed TENANTS tenants through the factories."""
    if jobs > tenants:
        raise click.UsageError(
            f"--jobs {jobs} is more than --tenants {tenants}: use at most {tenants}."
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
    )
    console = Console(stderr=True)
    with one_line_errors():
        options, schema = prepare(options, append)
        engine = engine_for(url)
        before = count_rows(engine, schema)
        console.print(
            f"Seeding {tenants} tenants x {customers_per_tenant} customers into "
            f"{safe_url(engine)} with --seed {options.seed} "
            f"--as-of {options.as_of}",
            soft_wrap=True,
            highlight=False,
        )
        started = time.perf_counter()
        try:
            _run(options, jobs, console)
        except SeedFailedError as exc:
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
    indexes = list(range(options.first_tenant, options.first_tenant + options.tenants))
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
                bars[stage] = progress.add_task(stage, total=options.tenants)
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
        f"repeat with --seed {options.seed} --as-of {options.as_of}",
        soft_wrap=True,
        highlight=False,
    )
