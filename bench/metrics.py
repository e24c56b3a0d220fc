"""What the metrics cost: the engine with and without its metrics observer, and one scrape.

    python bench/metrics.py [--model PATH] [--json OUT] [--reps N]

single stream   one request of 2,000 characters, 1 worker, 1 thread: the case where a model
                step is shortest, so per-step bookkeeping would show most
concurrent      64 requests of 200 characters at once, 2 workers, batches of up to 32
bookkeeping     what the observed engine adds per model step (a dict count by batch size) and
                per request (two histogram observations), timed alone, next to one step
scrape          `Metrics.exposition()` (what GET /metrics runs on the event loop) with the
                engine's histograms filled

The two kinds of engine alternate within each repetition so the machine's noise falls on both;
each figure is the median over `--reps`. Target: the observed engine within 3% of the bare one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import benchmark_model, write_json
from bot.config import ModelSpec
from bot.generation import (
    Engine,
    EngineConfig,
    GenerationBackend,
    GenerationLimits,
    GenerationParams,
)
from bot.generation.registry import ModelRegistry
from bot.ops.metrics import Metrics

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "metrics.json"
LONG = GenerationLimits(max_length=2000)
PROMPT = "ROMEO:\nWhat light through yonder window breaks?\n"


async def timed(engine: GenerationBackend, requests: int, length: int, seed: int) -> float:
    """Seconds for `requests` concurrent completions of `length` characters."""
    params = [
        GenerationParams(max_length=length, temperature=0.8, seed=seed + i) for i in range(requests)
    ]
    began = time.perf_counter()
    await asyncio.gather(*(engine.complete(PROMPT, p) for p in params))
    return time.perf_counter() - began


async def compare(
    path: Path, config: EngineConfig, requests: int, length: int, reps: int
) -> dict[str, Any]:
    metrics = Metrics()
    bare = await Engine.start(path, config, name="bare")
    observed = await Engine.start(path, config, name="observed", observer=metrics)
    seconds: dict[str, list[float]] = {"bare": [], "observed": []}
    try:
        for engine in (bare, observed):  # warm up
            await timed(engine, requests, 50, 0)
        for rep in range(reps):
            for name, engine in (("bare", bare), ("observed", observed)):
                seconds[name].append(await timed(engine, requests, length, rep))
    finally:
        await bare.close()
        await observed.close()
    med = {k: statistics.median(v) for k, v in seconds.items()}
    chars = requests * length
    return {
        "requests": requests,
        "characters": length,
        "chars_per_second": {k: chars / v for k, v in med.items()},
        "observed_over_bare_time": med["observed"] / med["bare"],
        "samples": seconds,
    }


def bookkeeping(seconds_per_step: float) -> dict[str, Any]:
    """The observer's own costs, timed alone: robust where end-to-end ratios drown in noise."""
    metrics = Metrics()
    steps: dict[tuple[str, int], int] = {}
    n = 200_000
    began = time.perf_counter()
    for _ in range(n):  # what Worker._step adds when observed
        key = ("shakespeare", 1)
        steps[key] = steps.get(key, 0) + 1
    per_step = (time.perf_counter() - began) / n
    began = time.perf_counter()
    for _ in range(n // 10):  # what a request adds: one observation at join, one at the end
        metrics.request_started("shakespeare", 0.001)
        metrics.request_finished("shakespeare", 0.1)
    per_request = (time.perf_counter() - began) / (n // 10)
    return {
        "per_step_ns": per_step * 1e9,
        "per_request_us": per_request * 1e6,
        "model_step_us": seconds_per_step * 1e6,
        "per_step_share": per_step / seconds_per_step,
    }


async def scrape(path: Path) -> dict[str, Any]:
    models = ModelRegistry()
    metrics = Metrics(models, configured_models=["shakespeare"])

    async def start(spec: ModelSpec) -> Engine:
        assert spec.path is not None
        config = EngineConfig(workers=2)
        return await Engine.start(spec.path, config, name=spec.name, observer=metrics)

    models.register_kind("onnx", start)
    engine = await models.start(ModelSpec("shakespeare", str(path)))
    try:
        await timed(engine, 64, 50, 0)  # fills the histograms
        times = []
        for _ in range(200):
            began = time.perf_counter()
            body = metrics.exposition()
            times.append(time.perf_counter() - began)
    finally:
        await models.close()
    return {
        "bytes": len(body),
        "median_ms": statistics.median(times) * 1e3,
        "max_ms": max(times) * 1e3,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="an ONNX model (default: the bundled one)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path, described = benchmark_model(Path(tmp), args.model)
        single = asyncio.run(
            compare(
                path,
                EngineConfig(provider="cpu", workers=1, intra_op_threads=1, limits=LONG),
                1,
                2000,
                args.reps,
            )
        )
        concurrent = asyncio.run(
            compare(path, EngineConfig(provider="cpu", workers=2, max_batch=32), 64, 200, args.reps)
        )
        exposition = asyncio.run(scrape(path))
    costs = bookkeeping(1 / single["chars_per_second"]["bare"])
    print(
        f"model: {described}; {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}"
    )
    print(f"{'run':<32} {'bare chars/s':>14} {'observed chars/s':>17} {'time ratio':>11}")
    for name, result in (
        ("single stream, 2,000 chars", single),
        ("64 concurrent x 200 chars", concurrent),
    ):
        cps = result["chars_per_second"]
        ratio = result["observed_over_bare_time"]
        print(f"{name:<32} {cps['bare']:>14,.0f} {cps['observed']:>17,.0f} {ratio:>11.3f}")
    print(
        f"observer bookkeeping: {costs['per_step_ns']:.0f} ns per model step "
        f"({costs['per_step_share']:.2%} of a {costs['model_step_us']:.0f} us step), "
        f"{costs['per_request_us']:.1f} us per request"
    )
    print(
        f"GET /metrics exposition: {exposition['bytes']:,} bytes, median "
        f"{exposition['median_ms']:.2f} ms, max {exposition['max_ms']:.2f} ms"
    )
    write_json(
        args.json,
        {
            "model": described,
            "single_stream": single,
            "concurrent": concurrent,
            "bookkeeping": costs,
            "scrape": exposition,
        },
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
