"""Settings store speed: get and set per second and p99 latency, SQLite vs PostgreSQL, with 1 and 8
concurrent clients, in one run.

    python bench/store.py [--ops N] [--repeat R] [--postgres URL] [--json OUT]

A client is a task calling the store the way the bot's command handlers do (`store.get` /
`store.set` on a channel's temperature); 8 clients share one store, as the handlers of one bot
process do (SQLite: one connection; PostgreSQL: the driver's pool). Each cell runs `--ops`
operations in all, spread over the clients, after 50 warm-up ones; sets write distinct values
to 100 channels, gets read them back. Every cell runs `--repeat` times, the drivers taking
turns so that a burst of load on a shared machine hits both, and the median of each figure is
kept. SQLite runs on a temporary file (WAL, synchronous=FULL); PostgreSQL on a database created
for the run (from `--postgres`, default the local server) and dropped afterwards. Both commit
every set to disk before it returns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import write_json
from bot.settings import SettingsRegistry
from bot.stores import Store, mask_url, open_store
from tests.postgres import DEFAULT_URL, URL_ENV, with_database

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "store.json"
CHANNELS = 100
WARMUP = 50
KEY = "temperature"


def registry() -> SettingsRegistry:
    reg = SettingsRegistry()
    reg.register_channel(KEY, default=None, owner="bench")
    return reg


async def measure(op: Callable[[int], Awaitable[Any]], ops: int, clients: int) -> dict[str, float]:
    """`ops` calls of `op(i)` over `clients` concurrent tasks: calls per second and latency."""
    for i in range(WARMUP):
        await op(i)
    latencies: list[float] = []

    async def client(start: int) -> None:
        for i in range(start, ops, clients):
            began = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(client(c) for c in range(clients)))
    wall = time.perf_counter() - began
    latencies.sort()
    return {
        "per_second": round(ops / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 3),
        "p99_ms": round(latencies[int(0.99 * (len(latencies) - 1))] * 1000, 3),
    }


async def bench_store(store: Store, ops: int, clients: int) -> dict[str, Any]:
    async def set_(i: int) -> None:
        await store.set(1000 + i % CHANNELS, KEY, (i % 200) / 100)

    async def get(i: int) -> None:
        await store.get(1000 + i % CHANNELS, KEY)

    return {
        "set": await measure(set_, ops, clients),
        "get": await measure(get, ops, clients),
    }


async def admin(url: str, statement: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        op: {
            figure: round(statistics.median(run[op][figure] for run in runs), 3)
            for figure in runs[0][op]
        }
        for op in ("set", "get")
    }


async def run(
    ops: int, postgres: str, concurrency: Sequence[int], repeat: int
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    database = f"charbot_bench_{secrets.token_hex(3)}"
    await admin(postgres, f'CREATE DATABASE "{database}"')
    stores: dict[str, Store] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            urls = {
                "sqlite": f"sqlite:///{Path(tmp) / 'bench.sqlite3'}",
                "postgresql": with_database(postgres, database),
            }
            for driver, url in urls.items():
                stores[driver] = await open_store(url, registry())
            for clients in concurrency:
                runs: dict[str, list[dict[str, Any]]] = {driver: [] for driver in stores}
                for _ in range(repeat):
                    for driver, store in stores.items():
                        runs[driver].append(await bench_store(store, ops, clients))
                for driver in stores:
                    rows.append({"store": driver, "clients": clients, **median_of(runs[driver])})
                    print_row(rows[-1])
    finally:
        for store in stores.values():
            await store.close()
        await admin(postgres, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return rows


HEADER = (
    f"{'store':<11} {'clients':>7}  {'set/s':>9} {'set p99 ms':>10}"
    f"  {'get/s':>9} {'get p99 ms':>10}"
)


def print_row(row: dict[str, Any]) -> None:
    s, g = row["set"], row["get"]
    print(
        f"{row['store']:<11} {row['clients']:>7}  {s['per_second']:>9,.0f} {s['p99_ms']:>10.2f}"
        f"  {g['per_second']:>9,.0f} {g['p99_ms']:>10.2f}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=2000, help="operations per cell (default 2000)")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(URL_ENV) or DEFAULT_URL,
        help=f"a server whose user may create databases (default: ${URL_ENV} or {DEFAULT_URL})",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell, median kept")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    print(
        f"{args.ops} operations per cell, median of {args.repeat} runs; "
        f"PostgreSQL at {mask_url(args.postgres)}\n"
    )
    print(HEADER)
    rows = asyncio.run(run(args.ops, args.postgres, (1, 8), args.repeat))
    write_json(
        args.json,
        {
            "benchmark": "store",
            "ops_per_cell": args.ops,
            "repeat": args.repeat,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "results": rows,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
