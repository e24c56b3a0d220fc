"""Benchmark of the model server through its OpenAI routes, against the local engine, in one run.

    python bench/serving.py [--model PATH] [--json OUT] [--reps N] [--singles N]

On the bundled model (else an untrained 2x256 LSTM), each engine with 1 worker thread:

    local      `Engine` in this process: no HTTP at all
    uvicorn    the model server's FastAPI app (`bot.serving.server`) in one plain uvicorn process:
               the floor of an HTTP hop, no Ray
    serve 1    `python -m bot serve`'s deployment with 1 replica: HTTP to Serve's proxy, which
               routes to the replica
    serve 2    the same with 2 replicas

Every HTTP path is driven by the bot's `openai` backend on `/v1/completions`, unstreamed and
streamed (SSE). For each: p50 and p99 of a 200-character completion (one at a time), the p50 of a
1-character completion (the fixed cost of a request: uvicorn minus local is the HTTP hop, serve 1
minus uvicorn is Ray's routing), and the characters per second of 64 concurrent 200-character
completions (the median over `--reps`). The paths alternate within each repetition, so the
machine's noise falls on all alike, and a ratio between two paths is the median of each
repetition's own ratio: on a shared machine the load drifts between repetitions (2-4x here),
far less between two paths measured a second apart.

Targets: serve 1's fixed cost over local no worse than the old API's (+14 ms); serve 1 at 64
concurrent >= 0.6 x local; a stream's cost over the unstreamed answer under 10%.
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
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import benchmark_model, write_json
from bot.generation import Engine, EngineConfig, GenerationBackend, GenerationParams
from bot.generation.backend import Completion
from bot.serving.openai_backend import OpenAIBackend

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "serving.json"
PROMPT = "ROMEO:\nWhat light through yonder window breaks?\n"
LENGTH = 200
CONCURRENT = 64
ENGINE = EngineConfig(workers=1, max_batch=64, max_queue=64)
SERVE_PORT = 8765
UVICORN_PORT = 8766
NAME = "bench"


class Streamed:
    """A backend whose `complete` streams (SSE) and joins the chunks: the streamed path."""

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend

    async def complete(self, prompt: str, params: GenerationParams) -> Completion:
        async for chunk in self.backend.stream(prompt, params):
            if chunk.completion is not None:
                return chunk.completion
        raise AssertionError("the stream ended without its completion")


Path_ = GenerationBackend | Streamed


async def single_latencies(backend: Path_, n: int, length: int = LENGTH) -> list[float]:
    """Seconds per completion, one request at a time (each seen from the caller)."""
    times = []
    for i in range(n):
        started = time.perf_counter()
        await backend.complete(PROMPT, GenerationParams(max_length=length, seed=i))
        times.append(time.perf_counter() - started)
    return times


async def concurrent_throughput(backend: Path_) -> float:
    """Characters per second of 64 concurrent completions, from the first sent to the last done."""
    params = GenerationParams(max_length=LENGTH, temperature=0.8)
    started = time.perf_counter()
    results = await asyncio.gather(*(backend.complete(PROMPT, params) for _ in range(CONCURRENT)))
    return sum(len(r.text) for r in results) / (time.perf_counter() - started)


def percentile(values: Sequence[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


async def measure(backends: dict[str, Path_], reps: int, singles: int) -> dict[str, Any]:
    """Alternate the paths within each repetition; pool the latencies, median the rates."""
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
            "one_char_p50_ms": 1000 * statistics.median(floors[name]),
            "chars_per_second_64": statistics.median(rates[name]),
            "singles": len(latencies[name]),
            "rates": rates[name],
        }
        for name in backends
    }


async def http_paths(label: str, url: str) -> dict[str, Path_]:
    backend = await OpenAIBackend.start(NAME, url, timeout=120.0)
    if backend.unavailable:
        await backend.close()
        raise SystemExit(f"the {label} server does not answer: {backend.unavailable}")
    return {label: backend, f"{label} SSE": Streamed(backend)}


async def close_paths(paths: dict[str, Path_]) -> None:
    for path in paths.values():
        if isinstance(path, OpenAIBackend):
            await path.close()


# -- the servers -------------------------------------------------------------------------------


def uvicorn_child(model: Path, port: int) -> None:
    """The model server's app in this process, on plain uvicorn, until killed."""
    import uvicorn

    from bot.serving.server import ModelDeployment, ModelServer, build_app

    async def run() -> None:
        server = await ModelServer.start([ModelDeployment(NAME, str(model), ENGINE)])
        config = uvicorn.Config(
            build_app(server), host="127.0.0.1", port=port, log_level="warning", access_log=False
        )
        try:
            await uvicorn.Server(config).serve()
        finally:
            await server.close()

    asyncio.run(run())


def start_uvicorn(model: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, __file__, "--uvicorn-child", "--model", str(model)]
    process = subprocess.Popen(command)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{UVICORN_PORT}/healthz"):
                return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the uvicorn server did not start")


async def bench(model: Path, reps: int, singles: int) -> dict[str, Any]:
    from bot.serving.app import deploy
    from bot.serving.server import ModelDeployment

    deployment = [ModelDeployment(NAME, str(model), ENGINE)]
    local = await Engine.start(model, ENGINE, name=NAME)
    uvicorn = start_uvicorn(model)
    paths: dict[str, Path_] = {"local": local}
    try:
        paths |= await http_paths("uvicorn", f"http://127.0.0.1:{UVICORN_PORT}/v1")
        await asyncio.to_thread(deploy, deployment, 1)
        paths |= await http_paths("serve 1", f"http://127.0.0.1:{SERVE_PORT}/v1")
        figures = await measure(paths, reps, singles)
        await close_paths(paths)
        await asyncio.to_thread(deploy, deployment, 2)
        paths = await http_paths("serve 2", f"http://127.0.0.1:{SERVE_PORT}/v1")
        figures |= await measure(paths, reps, singles)
    finally:
        await close_paths(paths)
        await local.close()
        uvicorn.terminate()
        uvicorn.wait()
    return dict(figures)


def report(figures: dict[str, Any]) -> dict[str, Any]:
    print(f"\n{'':12} {'p50 ms':>8} {'p99 ms':>8} {'1-char p50':>11} {'chars/s, 64 conc.':>18}")
    for name, f in figures.items():
        print(
            f"{name:12} {f['p50_ms']:8.1f} {f['p99_ms']:8.1f} {f['one_char_p50_ms']:11.1f} "
            f"{f['chars_per_second_64']:18,.0f}"
        )
    local, uv, one, two = (figures[k] for k in ("local", "uvicorn", "serve 1", "serve 2"))
    sse = figures["serve 1 SSE"]

    def paired(a: str, b: str) -> float:
        """The median of each repetition's rate of path `a` over path `b`."""
        ratios: list[float] = [
            x / y for x, y in zip(figures[a]["rates"], figures[b]["rates"], strict=True)
        ]
        return statistics.median(ratios)

    verdicts = {
        "serve1_fixed_cost_ms": one["one_char_p50_ms"] - local["one_char_p50_ms"],
        "http_hop_ms": uv["one_char_p50_ms"] - local["one_char_p50_ms"],
        "ray_routing_ms": one["one_char_p50_ms"] - uv["one_char_p50_ms"],
        "serve1_p50_over_local_ms": one["p50_ms"] - local["p50_ms"],
        "uvicorn_over_local_64": paired("uvicorn", "local"),
        "serve1_over_local_64": paired("serve 1", "local"),
        # Measured in a later run of repetitions: a ratio of medians.
        "serve2_over_serve1_64": two["chars_per_second_64"] / one["chars_per_second_64"],
        "sse_p50_cost": sse["p50_ms"] / one["p50_ms"] - 1,
        "uvicorn_sse_64_cost": 1 - paired("uvicorn SSE", "uvicorn"),
        "sse_64_cost": 1 - paired("serve 1 SSE", "serve 1"),
    }
    targets = {
        "serve1_fixed_cost_ms": ("<=", 14.0),
        "serve1_over_local_64": (">=", 0.6),
        "sse_p50_cost": ("<=", 0.10),
        "sse_64_cost": ("<=", 0.10),
    }
    print()
    for key, value in verdicts.items():
        line = f"{key:26} {value:8.3f}"
        if key in targets:
            op, target = targets[key]
            met = value <= target if op == "<=" else value >= target
            line += f"   target {op} {target:g}: {'met' if met else 'MISSED'}"
        print(line)
    return {"figures": figures, "verdicts": verdicts, "targets": targets}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="an ONNX contract model (default: bundled)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write figures")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (median of rates)")
    parser.add_argument("--singles", type=int, default=40, help="single completions per rep")
    parser.add_argument("--uvicorn-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.uvicorn_child:
        uvicorn_child(args.model, UVICORN_PORT)
        return 0
    import ray
    from ray import serve

    from bot.serving.app import start_serve
    from bot.serving.cli import OBJECT_STORE_BYTES

    with tempfile.TemporaryDirectory() as tmp:
        path, described = benchmark_model(Path(tmp), args.model)
        load = os.getloadavg()
        print(f"model: {described}; {os.cpu_count()} CPU(s); each engine 1 worker thread")
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        ray.init(include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES)
        try:
            start_serve("127.0.0.1", SERVE_PORT)
            figures = asyncio.run(bench(path, args.reps, args.singles))
        finally:
            serve.shutdown()  # type: ignore[no-untyped-call]
            ray.shutdown()
    result = report(figures)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_before": load,
    }
    result["model"] = described
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
