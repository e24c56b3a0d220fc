"""Engine throughput by concurrency on one execution provider, state on the host vs on the device.

    python bench/providers.py                      # CPU provider
    python bench/providers.py --provider cuda      # needs onnxruntime-gpu and a GPU

For each concurrency (default 1, 64, 256 and 1024 requests of `--length` characters at once), the
same requests run through the engine with `io_binding` off (the state goes through the host every
step) and on (IOBinding: the state stays on the session's device), alternating, `--reps` times;
medians of characters per second, and their ratio, from the same run. Prints a table and writes
JSON (bench/results/providers-PROVIDER.json).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import benchmark_model, write_json  # noqa: E402
from bot.generation import Engine, EngineConfig, GenerationParams  # noqa: E402
from bot.generation.params import IoBinding, Provider  # noqa: E402

MODES: tuple[IoBinding, ...] = ("off", "on")


async def throughput(engine: Engine, count: int, length: int) -> float:
    """Characters per second for `count` concurrent requests of `length` characters."""
    params = [GenerationParams(max_length=length, temperature=0.8, seed=i) for i in range(count)]
    started = time.perf_counter()
    done = await asyncio.gather(*(engine.complete("ROMEO:", p) for p in params))
    seconds = time.perf_counter() - started
    return sum(len(c.text) for c in done) / seconds


async def measure(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for count in args.concurrency:
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        engines = {
            mode: await Engine.start(
                path,
                EngineConfig(
                    provider=args.provider,
                    workers=args.workers,
                    max_batch=args.max_batch,
                    max_queue=count,
                    io_binding=mode,
                    request_timeout=None,
                ),
            )
            for mode in MODES
        }
        try:
            provider = engines["on"].info.provider
            for _ in range(args.reps):  # alternate, so drift in the machine hits both alike
                for mode in MODES:
                    samples[mode].append(await throughput(engines[mode], count, args.length))
        finally:
            for engine in engines.values():
                await engine.close()
        medians = {mode: statistics.median(samples[mode]) for mode in MODES}
        results[str(count)] = {
            "provider_in_use": provider,
            "chars_per_second": medians,
            "samples": samples,
            "bound_vs_host": medians["on"] / medians["off"],
        }
        print(
            f"{count:>6} concurrent: host state {medians['off']:>10,.0f} chars/s, "
            f"device state {medians['on']:>10,.0f} chars/s ({medians['on'] / medians['off']:.2f}x)"
            f" on {provider}",
            flush=True,
        )
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--provider", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--model", type=Path, help="a contract .onnx file (default: bundled)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 64, 256, 1024])
    parser.add_argument("--length", type=int, default=200, help="characters per request")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=256, help="rows per batch per worker")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--json", type=Path, help="where to write JSON")
    args = parser.parse_args(argv)
    provider: Provider = args.provider
    with tempfile.TemporaryDirectory() as scratch:
        path, described = benchmark_model(Path(scratch), args.model)
        print(f"model: {described}; provider asked: {provider}; {args.length} chars a request")
        results = asyncio.run(measure(args, path))
    out = args.json or ROOT / "bench" / "results" / f"providers-{provider}.json"
    write_json(
        out, {"model": described, "args": vars(args) | {"model": str(args.model)}, **results}
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
