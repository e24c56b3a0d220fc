"""The bot end to end with `engine.workers` 1 against `auto` (and other counts), in one run.

    python bench/workers.py [--model PATH] [--workers 1 auto 2] [--count 64] [--length 1000]

Each kind is a real `python -m bot run` process on the model (the bundled one by default),
connected to the test Discord server (`bot.testing`) that runs in this process: `--count`
members' mentions arrive at once, each answered with a completion of `--length` characters, and
the time from the first mention to the last reply gives the aggregate characters per second. The
kinds alternate within each of `--reps` repetitions (a fresh process each time, warmed with one
mention first), so that the machine's noise falls on all of them alike; the rates are medians,
and each ratio to `workers = 1` is the median of the repetitions' own ratios. `auto` is what the
bot starts with when the config names no count: the cores the process may use, less one for the
event loop.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import benchmark_model, write_json
from bot.generation.params import engine_cores, usable_cores
from bot.testing import FakeDiscord, discord_env

REPO = Path(__file__).resolve().parent.parent
DEFAULT_JSON = REPO / "bench" / "results" / "workers.json"


def write_config(
    directory: Path, server: FakeDiscord, model: Path, workers: str, length: int, count: int
) -> Path:
    path = directory / f"workers-{workers}.toml"
    path.write_text(
        f"""
[discord]
cooldown_seconds = 0.0
test_guild_id = {server.world.guild.id}

[engine]
workers = {workers if workers == "auto" else int(workers)!r}
max_length = {length}
max_queue = {count}
timeout_seconds = 600.0

[generation]
length = {length}

[models.bench]
path = "{model}"

[store]
path = "{directory / f"settings-{workers}.sqlite3"}"
""".replace("'", '"')
    )
    return path


async def run_once(server: FakeDiscord, config: Path, count: int) -> tuple[float, int]:
    """One bot process: (seconds for `count` concurrent mentions, characters replied)."""
    env = {**os.environ, **discord_env(server), "PYTHONPATH": str(REPO)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "--config", str(config), "--log-level", "WARNING", "run",
        cwd=REPO, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        guild = server.world.guild.id
        await server.wait_until(
            lambda: server.gateway.connected() and server.synced_commands.get(guild),
            timeout=60,
            what="the bot process to connect",
        )
        w = server.world
        channel, users = w.general.id, [w.owner, w.moderator, w.member]
        bot = w.bot

        async def mentions(n: int) -> tuple[float, int]:
            after = max((m.id for m in server.sent_messages), default=0)
            started = time.perf_counter()
            for i in range(n):
                user = users[i % len(users)]
                await server.send_message(channel, user, f"{bot.mention} ROMEO:", mentions=[bot])

            def replies() -> list[Any] | None:
                done = [m for m in server.sent_messages if m.id > after and m.channel_id == channel]
                return done if len(done) >= n else None

            done = await server.signal.wait_for(replies, 600, lambda: "the bot's replies")
            return time.perf_counter() - started, sum(len(m.content) for m in done)

        await mentions(1)  # warm: the model's first steps, the store's first reads
        return await mentions(count)
    finally:
        proc.terminate()
        await proc.wait()


async def measure(model: Path, kinds: Sequence[str], args: argparse.Namespace) -> dict[str, Any]:
    runs: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeDiscord(heartbeat_interval=5.0) as server:
            configs = {
                k: write_config(Path(tmp), server, model, k, args.length, args.count) for k in kinds
            }
            for rep in range(args.reps):
                for kind in kinds:
                    seconds, chars = await run_once(server, configs[kind], args.count)
                    runs[kind].append(chars / seconds)
                    print(f"rep {rep + 1} workers {kind:>4}: {chars / seconds:9,.0f} chars/s")
    medians = {kind: statistics.median(rates) for kind, rates in runs.items()}
    # Each repetition's ratio to workers 1 run beside it, then their median: the load of a
    # shared machine drifts between repetitions more than within one.
    base = runs.get("1")
    ratios = (
        {
            k: statistics.median(r / b for r, b in zip(rates, base, strict=True))
            for k, rates in runs.items()
        }
        if base
        else {}
    )
    return {"chars_per_second": medians, "runs": runs, "over_workers_1": ratios}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a contract .onnx file (default: bundled)")
    parser.add_argument("--workers", nargs="+", default=["1", "auto"], help="counts or auto")
    parser.add_argument("--count", type=int, default=64, help="concurrent mentions")
    parser.add_argument("--length", type=int, default=1000, help="characters per completion")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (medians are taken)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        model, described = benchmark_model(Path(tmp), args.model)
        print(f"model: {described}")
        print(
            f"usable cores {usable_cores()}, auto sizes the engine to {engine_cores()}; "
            f"load average {os.getloadavg()[0]:.2f}"
        )
        result = asyncio.run(measure(model, args.workers, args))
    print()
    for kind, rate in result["chars_per_second"].items():
        ratio = result["over_workers_1"].get(kind)
        shown = f"  {ratio:.2f}x workers 1 (median of the reps' ratios)" if ratio else ""
        print(f"workers {kind:>4}: {rate:9,.0f} chars/s (median){shown}")
    write_json(
        args.json,
        {
            "machine": platform.platform(),
            "usable_cores": usable_cores(),
            "engine_cores": engine_cores(),
            "load_average": os.getloadavg(),
            "model": described,
            "count": args.count,
            "length": args.length,
            **result,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
