"""Is memory stable over many completions? Resident memory before and after 10,000 of them.

    python bench/memory.py [--model PATH] [--count N] [--json OUT]

On a 2-layer, 256-unit char LSTM (the bundled `models/shakespeare.onnx` when it exists, else an
untrained 2x256 LSTM exported to a temporary directory), two paths, one after the other:

engine      `Engine.complete`, `--concurrency` requests at a time, 2 workers
service     the bot's `CompletionService.complete` (channel settings, model choice, the engine),
            over 20 channels, as the Discord plugins call it (no Discord connection)

Each path is warmed up with `--warmup` completions (so that ONNX Runtime's arenas, the sampler's
buffers and the settings cache reach their working size), then VmRSS (from /proc/self/status) and
the number of live Python objects are read after a `gc.collect()`, then `--count` short completions
(20 characters from a short prompt) run, with a reading every fifth of the way. A leak shows as
growth that keeps rising from reading to reading; a plateau is an allocator settling.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import benchmark_model, write_json
from bot.config import load_config
from bot.generation import Engine, EngineConfig, GenerationParams
from bot.runtime import build_bot

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "memory.json"
PROMPTS = ["ROMEO:\n", "To be, or not", "What light", "KING:", ""]
CHANNELS = 20
LENGTH = 20


def rss_mb() -> float:
    """Resident memory now (VmRSS), in MiB; falls back to the peak (ru_maxrss) off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reading() -> dict[str, float]:
    gc.collect()
    return {"rss_mb": round(rss_mb(), 1), "objects": len(gc.get_objects())}


Call = Callable[[int], Awaitable[Any]]


async def drive(call: Call, count: int, concurrency: int, checkpoints: int) -> list[Any]:
    """`count` calls, `concurrency` at a time; a reading after each `count / checkpoints`."""
    readings: list[Any] = []
    done = 0
    step = max(1, count // checkpoints)
    while done < count:
        wave = min(concurrency, count - done)
        await asyncio.gather(*(call(done + i) for i in range(wave)))
        before = done
        done += wave
        if done // step != before // step or done == count:
            readings.append({"completions": done, **reading()})
    return readings


async def measure(name: str, call: Call, args: argparse.Namespace) -> dict[str, Any]:
    await drive(call, args.warmup, args.concurrency, 1)
    start = reading()
    started = time.perf_counter()
    readings = await drive(call, args.count, args.concurrency, 5)
    seconds = time.perf_counter() - started
    end = readings[-1]
    result = {
        "completions": args.count,
        "seconds": round(seconds, 2),
        "rss_before_mb": start["rss_mb"],
        "rss_after_mb": end["rss_mb"],
        "rss_growth_mb": round(end["rss_mb"] - start["rss_mb"], 1),
        "rss_growth_kb_per_1000": round(
            (end["rss_mb"] - start["rss_mb"]) * 1024 / (args.count / 1000), 1
        ),
        "objects_before": start["objects"],
        "objects_after": end["objects"],
        "readings": readings,
    }
    print(f"  {name}: {args.count} completions in {seconds:.1f} s", file=sys.stderr)
    return result


async def engine_path(model: Path, args: argparse.Namespace) -> dict[str, Any]:
    config = EngineConfig(provider="cpu", workers=2, max_batch=32, max_queue=args.concurrency)
    params = GenerationParams(max_length=LENGTH, temperature=0.8)
    async with await Engine.start(model, config) as engine:

        async def call(i: int) -> Any:
            return await engine.complete(PROMPTS[i % len(PROMPTS)], params)

        return await measure("engine", call, args)


async def service_path(model: Path, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    toml = tmp / "charbot.toml"
    toml.write_text(
        f'[engine]\nprovider = "cpu"\nworkers = 2\nmax_queue = {args.concurrency}\n\n'
        f"[generation]\nlength = {LENGTH}\n\n"
        f'[models]\ndefault = "bench"\n\n[models.bench]\npath = "{model}"\n\n'
        f'[store]\npath = "{tmp / "settings.sqlite3"}"\n'
    )
    bot = await build_bot(load_config(toml, {}, {}))
    try:
        await bot.prepare()  # the plugins (their settings keys) and the model, no Discord
        for channel in range(1, CHANNELS + 1, 4):  # some channels with their own temperature
            await bot.settings.set(channel, "temperature", 0.5)

        async def call(i: int) -> Any:
            async with bot.completions.track():
                return await bot.completions.complete(1 + i % CHANNELS, PROMPTS[i % len(PROMPTS)])

        return await measure("service", call, args)
    finally:
        await bot.models.close()
        await bot.settings.close()


def table(result: dict[str, Any]) -> str:
    rows = [
        f"{'path':<9} {'n':>6} {'s':>6} {'RSS before':>11} {'RSS after':>10} {'growth':>8} "
        f"{'KiB/1000':>9} {'objects before -> after':>24}"
    ]
    for name in ("engine", "service"):
        r = result[name]
        rows.append(
            f"{name:<9} {r['completions']:>6} {r['seconds']:>6.1f} {r['rss_before_mb']:>8.1f} MiB"
            f" {r['rss_after_mb']:>6.1f} MiB {r['rss_growth_mb']:>+6.1f} M"
            f" {r['rss_growth_kb_per_1000']:>+9.1f} {r['objects_before']:>11} -> "
            f"{r['objects_after']:<10}"
        )
        trail = ", ".join(f"{x['completions']}: {x['rss_mb']:.1f}" for x in r["readings"])
        rows.append(f"{'':<9} RSS (MiB) along the way: {trail}")
    return "\n".join(rows)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model, described = benchmark_model(tmp, args.model)
        gc.collect()
        result: dict[str, Any] = {
            "model": described,
            "length": LENGTH,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus, Python "
            f"{platform.python_version()}",
            "rss_at_start_mb": round(rss_mb(), 1),
        }
        result["engine"] = await engine_path(model, args)
        result["service"] = await service_path(model, args, tmp)
        return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a contract ONNX file")
    parser.add_argument("--count", type=int, default=10_000, help="completions per path")
    parser.add_argument("--warmup", type=int, default=1_000, help="completions before measuring")
    parser.add_argument("--concurrency", type=int, default=64, help="requests at a time")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    print(table(result))
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
