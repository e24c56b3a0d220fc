"""Benchmark of the model server: the local engine against the same model on Ray Serve, in one run.

    python bench/serving.py [--model PATH] [--json OUT] [--reps N] [--singles N]

On the bundled model (else an untrained 2x256 LSTM), each engine with 1 worker thread:

    local        `Engine` in this process
    remote 1     `python -m bot serve`'s application with 1 replica, through the bot's remote
                 backend (HTTP to Serve's proxy, then the replica)
    remote 2     the same with 2 replicas

For each: p50 and p99 latency of a single 200-character completion (one at a time), and the
aggregate characters per second of 64 concurrent 200-character completions (the median over
`--reps`); also the p50 of a 1-character completion, the fixed cost of a request on each path.
Local and remote runs alternate, so the machine's noise falls on both alike.
Targets: remote 1 p50 <= local p50 + 10 ms; remote 1 at 64 concurrent >= 70% of local;
remote 2 >= 1.5 x remote 1.
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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import ray
from ray import serve

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import benchmark_model, write_json
from bot.generation import Engine, EngineConfig, GenerationBackend, GenerationParams
from bot.serving.app import ModelDeployment, deploy, start_serve
from bot.serving.cli import OBJECT_STORE_BYTES
from bot.serving.remote import RemoteBackend

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "serving.json"
PROMPT = "ROMEO:\nWhat light through yonder window breaks?\n"
PARAMS = GenerationParams(max_length=200, temperature=0.8)
CONCURRENT = 64
ENGINE = EngineConfig(workers=1, max_batch=64, max_queue=64)
PORT = 8765
NAME = "bench"

Backend = GenerationBackend


async def single_latencies(backend: Backend, n: int, length: int = 200) -> list[float]:
    """Seconds per completion, one request at a time (each seen from the caller)."""
    times = []
    for i in range(n):
        started = time.perf_counter()
        await backend.complete(PROMPT, GenerationParams(max_length=length, seed=i))
        times.append(time.perf_counter() - started)
    return times


async def concurrent_throughput(backend: Backend) -> float:
    """Characters per second of 64 concurrent completions, from the first sent to the last done."""
    started = time.perf_counter()
    results = await asyncio.gather(*(backend.complete(PROMPT, PARAMS) for _ in range(CONCURRENT)))
    return sum(len(r.text) for r in results) / (time.perf_counter() - started)


def percentile(values: Sequence[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def measure(
    backends: dict[str, Backend], reps: int, singles: int
) -> dict[str, dict[str, Any]]:
    """Alternate the backends within each repetition; pool the latencies, median the rates."""
    latencies: dict[str, list[float]] = {name: [] for name in backends}
    floors: dict[str, list[float]] = {name: [] for name in backends}
    rates: dict[str, list[float]] = {name: [] for name in backends}
    for backend in backends.values():  # warm up: sessions, connections, first allocations
        await single_latencies(backend, 3)
        await concurrent_throughput(backend)
    for _ in range(reps):
        for name, backend in backends.items():
            latencies[name] += await single_latencies(backend, singles)
            floors[name] += await single_latencies(backend, singles, length=1)
        for name, backend in backends.items():
            rates[name].append(await concurrent_throughput(backend))
    return {
        name: {
            "p50_ms": 1000 * statistics.median(latencies[name]),
            "p99_ms": 1000 * percentile(latencies[name], 99),
            # A 1-character completion: the fixed cost of a request on this path.
            "one_char_p50_ms": 1000 * statistics.median(floors[name]),
            "chars_per_second_64": statistics.median(rates[name]),
            "singles": len(latencies[name]),
            "rates": rates[name],
        }
        for name in backends
    }


async def with_remote(
    url: str, run: Callable[[RemoteBackend], Awaitable[dict[str, dict[str, Any]]]]
) -> dict[str, dict[str, Any]]:
    backend = await RemoteBackend.start(NAME, url, timeout=120.0)
    try:
        if backend.unavailable:
            raise SystemExit(f"the model server does not answer: {backend.unavailable}")
        return await run(backend)
    finally:
        await backend.close()


def serve_model(path: Path, replicas: int) -> str:
    deploy([ModelDeployment(NAME, str(path), ENGINE, replicas=replicas)])
    return f"http://127.0.0.1:{PORT}/v1/models/{NAME}"


async def bench(path: Path, reps: int, singles: int) -> dict[str, dict[str, Any]]:
    local = await Engine.start(path, ENGINE, name=NAME)
    try:
        url = serve_model(path, replicas=1)

        async def one(remote: RemoteBackend) -> dict[str, dict[str, Any]]:
            return await measure({"local": local, "remote 1": remote}, reps, singles)

        figures = await with_remote(url, one)
        url = serve_model(path, replicas=2)

        async def two(remote: RemoteBackend) -> dict[str, dict[str, Any]]:
            return await measure({"remote 2": remote}, reps, singles)

        figures |= await with_remote(url, two)
    finally:
        await local.close()
    return figures


def report(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    print(f"\n{'':10} {'p50 ms':>8} {'p99 ms':>8} {'1-char p50':>11} {'chars/s, 64 conc.':>18}")
    for name, f in figures.items():
        print(
            f"{name:10} {f['p50_ms']:8.1f} {f['p99_ms']:8.1f} {f['one_char_p50_ms']:11.1f} "
            f"{f['chars_per_second_64']:18,.0f}"
        )
    local, one, two = figures["local"], figures["remote 1"], figures["remote 2"]
    verdicts = {
        "remote_overhead_p50_ms": one["p50_ms"] - local["p50_ms"],
        "remote1_over_local_64": one["chars_per_second_64"] / local["chars_per_second_64"],
        "remote2_over_remote1_64": two["chars_per_second_64"] / one["chars_per_second_64"],
    }
    targets = {
        "remote_overhead_p50_ms": ("<=", 10.0),
        "remote1_over_local_64": (">=", 0.70),
        "remote2_over_remote1_64": (">=", 1.5),
    }
    print()
    for key, value in verdicts.items():
        op, target = targets[key]
        met = value <= target if op == "<=" else value >= target
        print(f"{key:26} {value:8.2f}   target {op} {target:g}: {'met' if met else 'MISSED'}")
    return {"figures": figures, "verdicts": verdicts, "targets": targets}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an ONNX contract model (default: bundled)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (median of rates)")
    parser.add_argument("--singles", type=int, default=40, help="single completions per rep")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path, described = benchmark_model(Path(tmp), args.model)
        print(f"model: {described}; {os.cpu_count()} CPU(s); each engine 1 worker thread")
        ray.init(include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES)
        try:
            start_serve("127.0.0.1", PORT)
            figures = asyncio.run(bench(path, args.reps, args.singles))
        finally:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
    result = report(figures)
    result["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    result["model"] = described
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
