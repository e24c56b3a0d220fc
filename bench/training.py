"""Benchmark of the exporter's trainer: validation loss reached in a fixed wall-clock budget.

    python bench/training.py --budget 90 [--budget 900] [--corpus PATH] [--json OUT]
                             [--out DIR] [--compare-precision] [--repeat N]
                             [recipe overrides: --hidden 384 --seq-len 256 ...]

For each budget (seconds), train the exporter's default recipe (TrainConfig's defaults, with the
overrides given) on the corpus for `max_minutes = budget / 60` on this machine (the learning rate
decays along the time budget), then report:

    val loss   best.pt's mean cross-entropy on the *whole* validation text (the corpus's last
               10%), nats per character, read as 16 contiguous streams with the state carried:
               the same measurement for every run (the trainer's final validation)
    tokens/s   training throughput (validation pauses included in the budget, not in this figure)
    steps      optimiser steps done within the budget
    precision  what the steps ran in (`--precision auto` picks bf16 where it is native) and the
               load average (1 minute) before and after the run

With `--compare-precision`, each budget runs twice, fp32 then bf16, one right after the other so
that both see the same machine; `--repeat N` repeats the whole sequence N times and adds the
median of each (budget, precision).

and compare the loss with the target for that budget (90 s: <= 1.47, 900 s: <= 1.43 nats/char:
one default recipe, its dropout chosen from the budget, good at both). The machine is shared:
the budget is wall-clock time, so a busy machine gives fewer steps and a higher loss; tokens/s
says how busy it was.

The runs are kept under `--out` (default: a temporary directory, deleted at the end); with
`--out`, `BUDGETs/best.pt` (`BUDGETs-PRECISION[-rN]/best.pt` with the flags above) can be
exported with `python -m exporter export`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import write_json  # noqa: E402
from exporter.checkpoint import load_checkpoint  # noqa: E402
from exporter.cli import _add_train_options  # noqa: E402  (the same flags as `exporter train`)
from exporter.config import TrainConfig  # noqa: E402
from exporter.precision import CPUINFO, cpu_native_bf16  # noqa: E402
from exporter.report import describe_recipe  # noqa: E402
from exporter.train import train  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
DEFAULT_JSON = ROOT / "bench" / "results" / "training.json"
# Validation loss (nats/char) to beat for a budget in seconds: (comparison, value).
TARGETS: dict[int, tuple[str, float]] = {90: ("<=", 1.47), 900: ("<=", 1.43)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--budget",
        type=float,
        action="append",
        help="wall-clock training budget in seconds; repeatable (default: 90)",
    )
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="the training text")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write results")
    parser.add_argument("--out", type=Path, help="keep the runs here (BUDGETs/best.pt, last.pt)")
    parser.add_argument("--progress", action="store_true", help="show the trainer's progress bar")
    parser.add_argument(
        "--compare-precision",
        action="store_true",
        help="run each budget in fp32, then in bf16 (the same budget, one after the other)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, metavar="N", help="run everything N times; medians"
    )
    _add_train_options(parser)
    args = parser.parse_args(argv)
    if not args.budget:
        args.budget = [90.0]
    if args.compare_precision and args.precision is not None:
        parser.error("--compare-precision runs both precisions: leave --precision out")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    for name in ("max_steps", "max_minutes"):
        if getattr(args, name) is not None:
            parser.error(f"--{name.replace('_', '-')} is set by --budget here")
    return args


def recipe(args: argparse.Namespace, budget: float, precision: str | None = None) -> TrainConfig:
    given = {
        f.name: getattr(args, f.name)
        for f in fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    if precision is not None:
        given["precision"] = precision
    return TrainConfig().replace(**given, max_steps=None, max_minutes=budget / 60.0)


def meets(budget: float, loss: float) -> bool | None:
    target = TARGETS.get(round(budget))
    if target is None:
        return None
    op, value = target
    return loss < value if op == "<" else loss <= value


def run_one(
    args: argparse.Namespace,
    budget: float,
    out_root: Path,
    command: str,
    precision: str | None = None,
    repeat: int = 0,
) -> dict[str, Any]:
    config = recipe(args, budget, precision)
    name = (
        f"{budget:g}s" + (f"-{precision}" if precision else "") + (f"-r{repeat}" if repeat else "")
    )
    out_dir = out_root / name
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    result = train(
        config,
        [args.corpus],
        out_dir,
        progress=args.progress,
        overwrite=True,
        command=command,
    )
    wall = time.perf_counter() - started
    # The config as the run resolved it (the dropout, when not given, is chosen by the trainer).
    config = TrainConfig.from_dict(load_checkpoint(result.best_path)["train_config"])
    return {
        "budget_s": budget,
        "precision": result.precision.name,
        "precision_reason": result.precision.reason,
        "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before, after
        "recipe": describe_recipe(config),
        "config": config.to_dict(),
        "val_loss": result.best_val_loss,
        "tokens_per_second": round(result.tokens_per_second),
        "steps": result.steps,
        "train_seconds": round(result.seconds, 2),
        "wall_seconds": round(wall, 2),  # setup and the final full validation included
        "last_train_loss": (
            sum(result.train_loss[-20:]) / len(result.train_loss[-20:])
            if result.train_loss
            else None
        ),
        "val_history": result.val_history,
        "target": TARGETS.get(round(budget)),
        "meets_target": meets(budget, result.best_val_loss),
        "best_path": str(result.best_path) if args.out else None,
    }


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'budget':>7}  {'prec':<4}  {'recipe':<40} {'val loss':>8} {'tokens/s':>9} "
        f"{'steps':>6}  {'load':>9}  target"
    )
    lines = [head, "-" * len(head)]
    for row in rows:
        target = row["target"]
        verdict = "-"
        if target is not None:
            verdict = f"{target[0]} {target[1]:.2f} {'ok' if row['meets_target'] else 'MISSED'}"
        load = "/".join(f"{v:.1f}" for v in row["load_1min"])
        lines.append(
            f"{row['budget_s']:>6g}s  {row['precision']:<4}  {row['recipe']:<40} "
            f"{row['val_loss']:>8.4f} {row['tokens_per_second']:>9,} {row['steps']:>6}  "
            f"{load:>9}  {verdict}"
        )
    return "\n".join(lines)


def medians(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The median val loss, tokens/s and steps of each (budget, precision), in first-run order."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["budget_s"], row["precision"]), []).append(row)
    return [
        {
            "budget_s": budget,
            "precision": precision,
            "runs": len(group),
            "val_loss": statistics.median(r["val_loss"] for r in group),
            "tokens_per_second": round(statistics.median(r["tokens_per_second"] for r in group)),
            "steps": round(statistics.median(r["steps"] for r in group)),
            "load_1min": [
                min(r["load_1min"][0] for r in group),
                max(r["load_1min"][1] for r in group),
            ],
            "meets_target": meets(budget, statistics.median(r["val_loss"] for r in group)),
        }
        for (budget, precision), group in groups.items()
    ]


def median_table(summary: list[dict[str, Any]]) -> str:
    head = f"{'budget':>7}  {'prec':<4}  {'runs':>4} {'val loss':>8} {'tokens/s':>9} {'steps':>6}"
    lines = ["medians", head, "-" * len(head)]
    for m in summary:
        lines.append(
            f"{m['budget_s']:>6g}s  {m['precision']:<4}  {m['runs']:>4} {m['val_loss']:>8.4f} "
            f"{m['tokens_per_second']:>9,} {m['steps']:>6}"
        )
    return "\n".join(lines)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or what Python knows of the processor."""
    try:
        for line in CPUINFO.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    return {
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "native_bf16": cpu_native_bf16(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_at_end": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not args.corpus.is_file():
        print(f"error: the corpus {args.corpus} does not exist", file=sys.stderr)
        return 1
    command = f"python bench/training.py {shlex.join(argv)}"
    precisions: list[str | None] = ["fp32", "bf16"] if args.compare_precision else [None]
    rows: list[dict[str, Any]] = []
    print(table([]).splitlines()[0], flush=True)
    with tempfile.TemporaryDirectory(prefix="charbot-bench-") as tmp:
        out_root = args.out or Path(tmp)
        for repeat in range(1, args.repeat + 1):
            for budget in args.budget:
                for precision in precisions:
                    number = repeat if args.repeat > 1 else 0
                    rows.append(run_one(args, budget, out_root, command, precision, number))
                    print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    summary = medians(rows)
    if args.repeat > 1:
        print()
        print(median_table(summary))
    report = {
        "benchmark": "training",
        "command": command,
        "corpus": str(args.corpus),
        "machine": machine(),
        "note": "wall-clock budgets on a shared machine: figures vary with its load",
        "runs": rows,
        "medians": summary,
    }
    write_json(args.json, report)
    return 0 if all(m["meets_target"] is not False for m in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
