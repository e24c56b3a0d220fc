"""Benchmark of the generation engine against its floor and its alternatives, in one run.

    python bench/generation.py [--model PATH] [--json OUT] [--reps N]
    python bench/generation.py --int8 [--dynamic] [--model PATH] [--json OUT] [--reps N]

On a 2-layer, 256-unit char LSTM (the bundled `models/shakespeare.onnx` when it exists, else an
untrained 2x256 LSTM with a 65-character vocabulary exported to a temporary directory):

single stream, 1 thread
    engine       `Engine.complete` (priming, sampling at temperature 0.8, delivery to the loop)
    bare step    the same ONNX session's `run` in a loop: no sampling, no engine (the floor)
    torch eager  the same weights in PyTorch (`torch.set_num_threads(1)`), the same sampler
concurrent: 64 requests of 200 characters, 2 workers
    batching     the engine: continuous batching, one batch per worker
    naive        a 2-thread pool in which each request runs its own batch-1 loop

Each figure is the median over `--reps` repetitions; the kinds of run alternate within each
repetition, so that the machine's noise falls on all of them alike, and the ratios are computed
here. Targets: engine time per character <= 1.3 x the bare step's; engine >= 3 x faster than
torch eager; batching aggregate throughput >= 3 x the naive pool's, with a lower p99 latency.

With `--int8`, the model and its int8 rewrite (`exporter.int8`: static int8, its scales calibrated
on the corpus's first 90% when the corpus is here) are compared instead, alternating within each
repetition: the engine's single-stream chars/s, its throughput with 64 concurrent requests, the
file size, and the validation loss on the corpus's last 10% (when the corpus is here). Target:
int8 >= 1.3 x fp32 throughput at 64 concurrent for <= +0.02 nats/char, with a row's logits
independent of its batch and of chunking (`tests/exporter/test_int8.py`). `--dynamic` measures
the opt-in `int8-dynamic` (ONNX Runtime's dynamic quantization) instead.
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import benchmark_model, write_json
from bot.generation import Engine, EngineConfig, GenerationParams
from bot.generation.model import CPU, LoadedModel, load_model, session_options
from bot.generation.params import GenerationLimits
from bot.generation.sampling import BatchSampler
from models import contract
from models.charrnn import CharRNN, CharRNNConfig
from models.contract import ContractMetadata

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "generation.json"
CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
PROMPT = "ROMEO:\nWhat light through yonder window breaks?\n"
SAMPLING = GenerationParams(temperature=0.8)


# -- the model, in ONNX and in torch with the same weights ----------------------------------


# ONNX orders the gates of a recurrent layer differently from torch: block permutations that
# take ONNX's order to torch's (LSTM: iofc -> ifgo; GRU: zrh -> rzn).
_GATES = {"lstm": [0, 2, 3, 1], "gru": [1, 0, 2], "rnn": [0]}


def torch_from_onnx(path: Path) -> CharRNN:
    """Rebuild the CharRNN whose export is `path`, from the file's own initializers."""
    proto = onnx.load(str(path))
    meta = ContractMetadata.from_props({p.key: p.value for p in proto.metadata_props}, path)
    shape = meta.model
    cell = shape.cell
    model = CharRNN(
        CharRNNConfig(meta.tokenizer.vocab_size, cell, shape.layers, shape.hidden, shape.embedding)
    ).eval()
    weights = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    recurrent = [n for n in proto.graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    head = next(
        n for n in proto.graph.node if n.op_type in ("MatMul", "Gemm") and n.input[1] in weights
    )
    hidden = shape.hidden
    order = _GATES[cell]

    def gates(array: np.ndarray) -> torch.Tensor:  # (k * H, ...) in ONNX order -> torch order
        blocks = np.split(array, len(order), axis=0)
        return torch.from_numpy(np.concatenate([blocks[i] for i in order], axis=0).copy())

    state = {"embed.weight": torch.from_numpy(weights["embed.weight"].copy())}
    for layer, node in enumerate(recurrent):
        w, r, b = (weights[name][0] for name in node.input[1:4])  # (kH, I), (kH, H), (2kH,)
        state[f"rnn.weight_ih_l{layer}"] = gates(w)
        state[f"rnn.weight_hh_l{layer}"] = gates(r)
        state[f"rnn.bias_ih_l{layer}"] = gates(b[: len(order) * hidden])
        state[f"rnn.bias_hh_l{layer}"] = gates(b[len(order) * hidden :])
    head_w = weights[head.input[1]]
    state["head.weight"] = torch.from_numpy(
        (head_w.T if head.op_type == "MatMul" else head_w).copy()
    )
    state["head.bias"] = torch.from_numpy(weights["head.bias"].copy())
    model.load_state_dict(state)
    return model


def parity(path: Path, model: CharRNN) -> float:
    """Max |logits difference| between ONNX Runtime and torch on random tokens and state."""
    session = ort.InferenceSession(str(path), providers=[CPU])
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, model.config.vocab_size, (3, 20), generator=gen)
    state = 0.5 * torch.randn(model.state_layers, 3, model.config.hidden, generator=gen)
    with torch.inference_mode():
        expected, _ = model(tokens, state)
    got, _ = session.run(None, {"tokens": tokens.numpy(), "state": state.numpy()})
    return float(np.abs(got - expected.numpy()).max())


# -- single stream --------------------------------------------------------------------------


def bare_steps(session: ort.InferenceSession, model: LoadedModel, ids: list[int], n: int) -> float:
    """Seconds for the floor: prime, then n bare `session.run` steps (no sampling)."""
    names = list(contract.OUTPUT_NAMES)
    began = time.perf_counter()
    _, state = session.run(
        names, {"tokens": np.array([ids], dtype=np.int64), "state": model.zero_state(1)}
    )
    token = np.zeros((1, 1), dtype=np.int64)
    for _ in range(n):
        _, state = session.run(names, {"tokens": token, "state": state})
    return time.perf_counter() - began


def torch_steps(model: CharRNN, ids: list[int], n: int, seed: int) -> float:
    """Seconds for torch eager: prime, then n steps sampled with the engine's sampler."""
    sampler = BatchSampler([SAMPLING], [np.random.default_rng(seed)])
    began = time.perf_counter()
    with torch.inference_mode():
        logits, state = model(torch.tensor([ids]), model.initial_state(1))
        for _ in range(n):
            token = sampler(logits[:, -1].numpy())  # (1,)
            logits, state = model(torch.from_numpy(token).view(1, 1), state)
    return time.perf_counter() - began


def single_engine_config(n: int) -> EngineConfig:
    """One worker, one thread, and a length limit that lets an `n`-character run through."""
    limits = GenerationLimits(max_length=max(n, GenerationLimits().max_length))
    return EngineConfig(provider="cpu", workers=1, intra_op_threads=1, limits=limits)


async def single_stream(path: Path, torch_model: CharRNN, n: int, reps: int) -> dict[str, Any]:
    torch.set_num_threads(1)
    model = load_model(path, "cpu", intra_op_threads=1)
    session = ort.InferenceSession(str(path), session_options(1), providers=[CPU])
    ids = model.tokenizer.encode(PROMPT).ids
    engine = await Engine.start(path, single_engine_config(n))
    params = GenerationParams(max_length=n, temperature=SAMPLING.temperature)
    per_char: dict[str, list[float]] = {"engine": [], "bare": [], "torch": []}
    try:
        await engine.complete(PROMPT, GenerationParams(max_length=50))  # warm up all three
        bare_steps(session, model, ids, 50)
        torch_steps(torch_model, ids, 50, 0)
        for rep in range(reps):
            began = time.perf_counter()
            done = await engine.complete(PROMPT, GenerationParams(**{**vars(params), "seed": rep}))
            per_char["engine"].append((time.perf_counter() - began) / done.tokens)
            per_char["bare"].append(bare_steps(session, model, ids, n) / n)
            per_char["torch"].append(torch_steps(torch_model, ids, n, rep) / n)
    finally:
        await engine.close()
    med = {k: statistics.median(v) for k, v in per_char.items()}
    return {
        "characters": n,
        "seconds_per_char": med,
        "chars_per_second": {k: 1 / v for k, v in med.items()},
        "engine_over_bare_time": med["engine"] / med["bare"],
        "engine_speedup_over_torch": med["torch"] / med["engine"],
        "samples": per_char,
    }


# -- concurrent -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


async def batching_run(engine: Engine, count: int, length: int) -> tuple[float, int, list[float]]:
    began = time.perf_counter()
    done = await asyncio.gather(
        *(
            engine.complete(PROMPT, GenerationParams(max_length=length, seed=i))
            for i in range(count)
        )
    )
    wall = time.perf_counter() - began
    return wall, sum(len(c.text) for c in done), [c.seconds for c in done]


def naive_request(
    model: LoadedModel, ids: list[int], length: int, seed: int, submitted: float
) -> tuple[int, float]:
    """One request's own batch-1 loop, as a plain thread pool would run it."""
    params = GenerationParams(max_length=length, temperature=SAMPLING.temperature, seed=seed)
    sampler = BatchSampler([params], [np.random.default_rng(seed)])
    logits, state = model.prime(ids)
    tokens = np.empty((1, 1), dtype=np.int64)
    out = []
    for i in range(length):
        row = logits.reshape(1, -1)
        if model.banned_id is not None:
            row[:, model.banned_id] = -np.inf
        tokens[:, 0] = sampler(row)
        out.append(model.pieces[int(tokens[0, 0])])
        if i + 1 < length:
            step, state = model.run(tokens, state)
            logits = step[0, -1]
    return len("".join(out)), time.monotonic() - submitted


async def naive_run(
    pool: ThreadPoolExecutor, model: LoadedModel, count: int, length: int
) -> tuple[float, int, list[float]]:
    loop = asyncio.get_running_loop()
    ids = model.tokenizer.encode(PROMPT).ids
    began = time.perf_counter()
    submitted = time.monotonic()
    done = await asyncio.gather(
        *(
            loop.run_in_executor(pool, naive_request, model, ids, length, i, submitted)
            for i in range(count)
        )
    )
    wall = time.perf_counter() - began
    return wall, sum(chars for chars, _ in done), [latency for _, latency in done]


async def concurrent(
    path: Path, count: int, length: int, workers: int, reps: int
) -> dict[str, Any]:
    config = EngineConfig(
        provider="cpu", workers=workers, intra_op_threads=1, max_batch=32, max_queue=count
    )
    engine = await Engine.start(path, config)
    model = load_model(path, "cpu", intra_op_threads=1)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="naive")
    runs: dict[str, list[tuple[float, int, list[float]]]] = {"batching": [], "naive": []}
    try:
        await batching_run(engine, workers * 2, 20)  # warm up
        await naive_run(pool, model, workers * 2, 20)
        for _ in range(reps):
            runs["batching"].append(await batching_run(engine, count, length))
            runs["naive"].append(await naive_run(pool, model, count, length))
    finally:
        await engine.close()
        pool.shutdown()
    out: dict[str, Any] = {"requests": count, "characters_each": length, "workers": workers}
    for kind, results in runs.items():
        out[kind] = {
            "chars_per_second": statistics.median(chars / wall for wall, chars, _ in results),
            "p50_latency_s": statistics.median(percentile(lat, 50) for _, _, lat in results),
            "p99_latency_s": statistics.median(percentile(lat, 99) for _, _, lat in results),
            "wall_s": statistics.median(wall for wall, _, _ in results),
        }
    out["throughput_ratio"] = out["batching"]["chars_per_second"] / out["naive"]["chars_per_second"]
    out["p99_ratio"] = out["batching"]["p99_latency_s"] / out["naive"]["p99_latency_s"]
    return out


# -- int8 against fp32 ---------------------------------------------------------------------


async def engine_single(engine: Engine, n: int, seed: int) -> float:
    """Characters per second of one `n`-character completion."""
    began = time.perf_counter()
    done = await engine.complete(PROMPT, GenerationParams(max_length=n, seed=seed))
    return len(done.text) / (time.perf_counter() - began)


async def int8_comparison(fp32: Path, int8: Path, args: argparse.Namespace) -> dict[str, Any]:
    kinds = {"fp32": fp32, "int8": int8}
    single_cfg = single_engine_config(args.chars)
    conc_cfg = EngineConfig(
        provider="cpu", workers=args.workers, intra_op_threads=1, max_batch=32,
        max_queue=args.requests,
    )  # fmt: skip
    singles = {k: await Engine.start(p, single_cfg) for k, p in kinds.items()}
    batched = {k: await Engine.start(p, conc_cfg) for k, p in kinds.items()}
    single: dict[str, list[float]] = {k: [] for k in kinds}
    conc: dict[str, list[float]] = {k: [] for k in kinds}
    p99: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        for kind in kinds:  # warm up
            await engine_single(singles[kind], 50, 0)
            await batching_run(batched[kind], args.workers * 2, 20)
        for rep in range(args.reps):
            for kind in kinds:
                single[kind].append(await engine_single(singles[kind], args.chars, rep))
                wall, chars, latencies = await batching_run(
                    batched[kind], args.requests, args.length
                )
                conc[kind].append(chars / wall)
                p99[kind].append(percentile(latencies, 99))
    finally:
        for engine in (*singles.values(), *batched.values()):
            await engine.close()
    out: dict[str, Any] = {"requests": args.requests, "characters_each": args.length}
    for kind, path in kinds.items():
        out[kind] = {
            "file_bytes": path.stat().st_size,
            "single_chars_per_second": statistics.median(single[kind]),
            "concurrent_chars_per_second": statistics.median(conc[kind]),
            "concurrent_p99_s": statistics.median(p99[kind]),
            "val_loss": None,
        }
    if args.corpus.is_file():
        from exporter.quantize import onnx_val_loss

        _, val = corpus_ids(fp32, args.corpus)
        for kind, path in kinds.items():
            out[kind]["val_loss"] = onnx_val_loss(path, val)
    out["throughput_ratio"] = (
        out["int8"]["concurrent_chars_per_second"] / out["fp32"]["concurrent_chars_per_second"]
    )
    out["single_ratio"] = (
        out["int8"]["single_chars_per_second"] / out["fp32"]["single_chars_per_second"]
    )
    if out["fp32"]["val_loss"] is not None:
        out["val_loss_increase"] = out["int8"]["val_loss"] - out["fp32"]["val_loss"]
    return out


def corpus_ids(model: Path, corpus: Path) -> tuple[np.ndarray | None, np.ndarray]:
    """The corpus's tokens split as the trainer splits them (training: the first 90%); no
    training tokens when the corpus is not here."""
    if not corpus.is_file():
        return None, np.zeros(0, dtype=np.int64)
    tokenizer = load_model(model, "cpu").tokenizer
    ids = np.asarray(tokenizer.encode(corpus.read_text(encoding="utf-8")).ids)
    cut = int(len(ids) * 0.9)
    return ids[:cut], ids[cut:]


def int8_table(result: dict[str, Any]) -> str:
    c = result["int8_comparison"]
    head = (
        f"{'model':<6} {'file bytes':>11} {'single chars/s':>15} "
        f"{c['requests']} concurrent chars/s   p99 s   val loss"
    )
    lines = [f"model: {result['model']['path']}, int8 method: {result['method']}", "", head]
    for kind in ("fp32", "int8"):
        k = c[kind]
        loss = "-" if k["val_loss"] is None else f"{k['val_loss']:.4f}"
        lines.append(
            f"{kind:<6} {k['file_bytes']:>11,} {k['single_chars_per_second']:>15,.0f} "
            f"{k['concurrent_chars_per_second']:>23,.0f}  {k['concurrent_p99_s']:>6.3f}  {loss:>8}"
        )
    lines.append(
        f"int8 / fp32: throughput at {c['requests']} concurrent {c['throughput_ratio']:.2f}x, "
        f"single stream {c['single_ratio']:.2f}x"
        + (f", val loss {c['val_loss_increase']:+.4f}" if "val_loss_increase" in c else "")
    )
    return "\n".join(lines)


# -- report ---------------------------------------------------------------------------------


def targets(single: dict[str, Any], conc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    checks = {
        "engine time/char <= 1.3 x bare step": (single["engine_over_bare_time"], 1.3, "<="),
        "engine >= 3 x faster than torch eager": (single["engine_speedup_over_torch"], 3.0, ">="),
        "batching >= 3 x naive throughput": (conc["throughput_ratio"], 3.0, ">="),
        "batching p99 < naive p99": (conc["p99_ratio"], 1.0, "<"),
    }
    return {
        name: {
            "measured": value,
            "target": f"{op} {bound}",
            "met": value <= bound
            if op == "<="
            else value >= bound
            if op == ">="
            else value < bound,
        }
        for name, (value, bound, op) in checks.items()
    }


def table(result: dict[str, Any]) -> str:
    s, c = result["single_stream"], result["concurrent"]
    cps, spc = s["chars_per_second"], s["seconds_per_char"]
    lines = [
        f"model: {result['model']['name']} ({result['model']['cell']} "
        f"{result['model']['layers']}x{result['model']['hidden']}, vocab "
        f"{result['model']['vocab_size']}), torch parity {result['model']['torch_parity']:.1e}",
        "",
        f"single stream, 1 thread, {s['characters']} characters   chars/s   us/char",
    ]
    for key, label in (("engine", "engine"), ("bare", "bare session.run (floor)"),
                       ("torch", "torch eager, same sampling")):  # fmt: skip
        lines.append(f"  {label:<42} {cps[key]:>8.0f}  {spc[key] * 1e6:>8.1f}")
    lines += [
        f"  engine / bare time per char: {s['engine_over_bare_time']:.2f}   "
        f"engine speed-up over torch: {s['engine_speedup_over_torch']:.2f}x",
        "",
        f"{c['requests']} concurrent x {c['characters_each']} characters, {c['workers']} workers"
        "    chars/s   p50 s   p99 s",
    ]
    for kind in ("batching", "naive"):
        k = c[kind]
        lines.append(
            f"  {kind:<42} {k['chars_per_second']:>8.0f}  {k['p50_latency_s']:>6.3f}  "
            f"{k['p99_latency_s']:>6.3f}"
        )
    lines += [
        f"  throughput ratio: {c['throughput_ratio']:.2f}x   p99 ratio: {c['p99_ratio']:.2f}",
        "",
        "targets:",
    ]
    for name, t in result["targets"].items():
        verdict = "met" if t["met"] else "MISSED"
        lines.append(f"  {name:<42} {t['measured']:>8.2f}  ({t['target']})  {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a contract .onnx file (default: bundled)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    parser.add_argument("--reps", type=int, default=5, help="repetitions (medians are taken)")
    # 2,000 characters (~0.15 s a run): 500-character runs were short enough for one scheduler
    # hiccup on a shared machine to move the ratio by 0.1-0.2.
    parser.add_argument("--chars", type=int, default=2000, help="single-stream length")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--int8", action="store_true", help="compare with its int8 quantization")
    parser.add_argument(
        "--dynamic", action="store_true", help="--int8: the opt-in int8-dynamic method instead"
    )
    parser.add_argument(
        "--corpus", type=Path, default=CORPUS, help="--int8: the text to measure the loss on"
    )
    args = parser.parse_args(argv)
    if args.int8:
        return main_int8(args)

    with tempfile.TemporaryDirectory() as tmp:
        path, described = benchmark_model(Path(tmp), args.model)
        torch_model = torch_from_onnx(path)
        info = load_model(path, "cpu").info
        drift = parity(path, torch_model)
        if drift > 1e-3:
            print(f"torch and ONNX disagree by {drift:.2e}: not the same weights", file=sys.stderr)
            return 1
        single = asyncio.run(single_stream(path, torch_model, args.chars, args.reps))
        conc = asyncio.run(concurrent(path, args.requests, args.length, args.workers, args.reps))
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
        "model": {
            "name": info.name,
            "path": described,
            **info.details,
            "vocab_size": info.vocab_size,
            "torch_parity": drift,
        },
        "reps": args.reps,
        "single_stream": single,
        "concurrent": conc,
    }
    result["targets"] = targets(single, conc)
    print(table(result))
    write_json(args.json, result)
    return 0


def main_int8(args: argparse.Namespace) -> int:
    from exporter.quantize import quantize_int8

    with tempfile.TemporaryDirectory() as tmp:
        path, described = benchmark_model(Path(tmp), args.model)
        int8 = Path(tmp) / (path.stem + "-int8.onnx")
        method = "dynamic" if args.dynamic else "static"
        quantize_int8(path, int8, corpus_ids(path, args.corpus)[0], method)
        comparison = asyncio.run(int8_comparison(path, int8, args))
    info = load_model(path, "cpu").info
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
            "load_average_at_end": os.getloadavg(),
        },
        "model": {"name": info.name, "path": described, "description": info.description},
        "method": "dynamic" if args.dynamic else "static",
        "reps": args.reps,
        "int8_comparison": comparison,
    }  # fmt: skip
    print(int8_table(result))
    json_path = args.json
    if json_path == DEFAULT_JSON:
        json_path = DEFAULT_JSON.with_name("generation-int8.json")
    write_json(json_path, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
