"""`dotmac-factoryboy seed` at scale: --jobs 1 against --jobs 2, side by side in one run, with the
per-row cost next to the bulk benchmark's (benchmarks/results.json, written by bench_bulk.py).

Default: 10 tenants x 10 000 customers on PostgreSQL (DOTMAC_TEST_POSTGRES_URL), the issue's
case. Writes benchmarks/seed.md, shown on the docs' performance page. Never asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

from isp_database import backend_urls, fresh_engine

HERE = Path(__file__).parent
LINE = re.compile(r"(\d+) rows in ([\d.]+) s")


def seed(url: str, tenants: int, customers: int, jobs: int) -> tuple[int, float]:
    """Rows written and seconds taken, as the command itself reports them."""
    fresh_engine(url).dispose()  # an empty ISP schema: seed refuses to write over rows
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dotmac_factoryboy",
            "seed",
            "--url",
            url,
            "--tenants",
            str(tenants),
            "--customers-per-tenant",
            str(customers),
            "--jobs",
            str(jobs),
            "--seed",
            "1",
            "--as-of",
            "2026-01-15",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    found = LINE.search(out)
    assert found, out
    return int(found.group(1)), float(found.group(2))


def bulk_us_per_row(backend: str) -> float | None:
    """The bulk benchmark's cost per row (a customer and its address are two rows)."""
    results = json.loads((HERE / "results.json").read_text())
    case = results["backends"].get(backend, {}).get("dotmac_factoryboy create_batch")
    return None if case is None else case["median_s"] / (2 * results["size"]) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--backend", action="append", help="default: PostgreSQL if set")
    args = parser.parse_args()
    urls = backend_urls()
    names = args.backend or (["PostgreSQL"] if "PostgreSQL" in urls else ["SQLite (file)"])
    lines = [
        f"`dotmac-factoryboy seed --tenants {args.tenants} --customers-per-tenant "
        f"{args.customers}`, one run each, side by side (Python {platform.python_version()}, "
        f"{os.cpu_count()} CPUs). Bulk = `create_batch` of customers in bulk.md.",
        "",
        "| backend | jobs | rows | seconds | rows/s | µs per row | bulk µs per row | speed-up |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name in names:
        single = None
        for jobs in (1, 2):
            rows, seconds = seed(urls[name], args.tenants, args.customers, jobs)
            single = single or seconds
            bulk = bulk_us_per_row(name)
            lines.append(
                f"| {name} | {jobs} | {rows:,} | {seconds:.1f} | {rows / seconds:,.0f} | "
                f"{seconds / rows * 1e6:.0f} | {'' if bulk is None else f'{bulk:.0f}'} | "
                f"{single / seconds:.2f}x |"
            )
            print(lines[-1], flush=True)
        fresh_engine(urls[name]).dispose()
    (HERE / "seed.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
