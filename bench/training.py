"""Benchmark of the exporter's trainer: validation loss reached in a fixed wall-clock budget.

    python bench/training.py --budget 90 [--budget 900] [--corpus PATH] [--json OUT]
                             [--out DIR] [recipe overrides: --hidden 384 --seq-len 256 ...]

For each budget (seconds), train the exporter's default recipe (TrainConfig's defaults, with the
overrides given) on the corpus for `max_minutes = budget / 60` on this machine (the learning rate
decays along the time budget), then report:

    val loss   best.pt's mean cross-entropy on the *whole* validation text (the corpus's last
               10%), nats per character, read as 16 contiguous streams with the state carried:
               the same measurement for every run (the trainer's final validation)
    tokens/s   training throughput (validation pauses included in the budget, not in this figure)
    steps      optimiser steps done within the budget

and compare the loss with the target for that budget (90 s: <= 1.50, 900 s: <= 1.45 nats/char:
one default recipe, its dropout chosen from the budget, good at both). The machine is shared:
the budget is wall-clock time, so a busy machine gives fewer steps and a higher loss; tokens/s
says how busy it was.

The runs are kept under `--out` (default: a temporary directory, deleted at the end); with
`--out`, `BUDGETs/best.pt` can be exported with `python -m exporter export`.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
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
from exporter.report import describe_recipe  # noqa: E402
from exporter.train import train  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"
DEFAULT_JSON = ROOT / "bench" / "results" / "training.json"
# Validation loss (nats/char) to beat for a budget in seconds: (comparison, value).
TARGETS: dict[int, tuple[str, float]] = {90: ("<=", 1.50), 900: ("<=", 1.45)}


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
    _add_train_options(parser)
    args = parser.parse_args(argv)
    if not args.budget:
        args.budget = [90.0]
    for name in ("max_steps", "max_minutes"):
        if getattr(args, name) is not None:
            parser.error(f"--{name.replace('_', '-')} is set by --budget here")
    return args


def recipe(args: argparse.Namespace, budget: float) -> TrainConfig:
    given = {
        f.name: getattr(args, f.name)
        for f in fields(TrainConfig)
        if getattr(args, f.name, None) is not None
    }
    return TrainConfig().replace(**given, max_steps=None, max_minutes=budget / 60.0)


def meets(budget: float, loss: float) -> bool | None:
    target = TARGETS.get(round(budget))
    if target is None:
        return None
    op, value = target
    return loss < value if op == "<" else loss <= value


def run_one(
    args: argparse.Namespace, budget: float, out_root: Path, command: str
) -> dict[str, Any]:
    config = recipe(args, budget)
    out_dir = out_root / f"{budget:g}s"
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
    head = f"{'budget':>7}  {'recipe':<44} {'val loss':>8} {'tokens/s':>9} {'steps':>6}  target"
    lines = [head, "-" * len(head)]
    for row in rows:
        target = row["target"]
        verdict = "-"
        if target is not None:
            verdict = f"{target[0]} {target[1]:.2f} {'ok' if row['meets_target'] else 'MISSED'}"
        lines.append(
            f"{row['budget_s']:>6g}s  {row['recipe']:<44} {row['val_loss']:>8.4f} "
            f"{row['tokens_per_second']:>9,} {row['steps']:>6}  {verdict}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if not args.corpus.is_file():
        print(f"error: the corpus {args.corpus} does not exist", file=sys.stderr)
        return 1
    command = f"python bench/training.py {shlex.join(argv)}"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="charbot-bench-") as tmp:
        out_root = args.out or Path(tmp)
        for budget in args.budget:
            rows.append(run_one(args, budget, out_root, command))
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print()
    print(table(rows))
    report = {
        "benchmark": "training",
        "command": command,
        "corpus": str(args.corpus),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "load_average_at_end": os.getloadavg(),
        },
        "note": "wall-clock budgets on a shared machine: figures vary with its load",
        "runs": rows,
    }
    write_json(args.json, report)
    return 0 if all(row["meets_target"] is not False for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
