"""`python -m exporter report RUN_DIR [RUN_DIR...]`: training runs side by side.

For each run directory: its level (char or word), the best validation loss in that level's unit
(best.pt's final figure on the whole validation text, or the best periodic one while the run goes
on), steps, training time, tokens per second, the recipe and the corpus, from its checkpoints;
then the runs' validation curves (from their metrics.csv, or the checkpoint's history for a run
without one) on one `compare.png`. Nats per character and nats per word do not compare: a table
mixing the two levels says so.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from exporter.checkpoint import load_checkpoint
from exporter.config import TrainConfig
from exporter.errors import CheckpointError
from exporter.metrics import METRICS_FILE, MetricsRow, read_metrics, rows_from_history
from exporter.plots import draw_compare

COMPARE_FILE = "compare.png"
CORPUS_WIDTH = 24  # characters of the corpus column; longer lists of files are cut


@dataclass(frozen=True)
class RunSummary:
    name: str
    best_val_loss: float | None
    final: bool  # best_val_loss is the final full validation, not a periodic sample
    steps: int
    seconds: float
    tokens_per_second: float
    recipe: str
    rows: list[MetricsRow]
    level: str = "char"  # the loss is in nats per `level`
    corpus: str = ""  # the corpus files' names


def describe_recipe(config: TrainConfig) -> str:
    """A recipe in a few words: `lstm 2x256 e64 T64 B32 lr0.01 carry do0.3`."""
    carry = "carry" if config.carry_state else "random"
    batch = "auto" if config.batch_size is None else str(config.batch_size)
    lr = "auto" if config.lr is None else f"{config.lr:g}"
    text = (
        f"{config.cell} {config.layers}x{config.hidden} e{config.embedding} "
        f"T{config.seq_len} B{batch} lr{lr} {carry}"
    )
    if config.dropout:
        text += f" do{config.dropout:g}"
    if config.threads:
        text += f" th{config.threads}"
    return text


def summarize_run(run_dir: Path) -> RunSummary:
    """What a run directory's checkpoints and metrics.csv say about it."""
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run directory")
    last_path, best_path = run_dir / "last.pt", run_dir / "best.pt"
    if not last_path.exists() and not best_path.exists():
        raise CheckpointError(f"{run_dir} holds no training run (no last.pt or best.pt)")
    latest = load_checkpoint(last_path if last_path.exists() else best_path)
    best = load_checkpoint(best_path) if best_path.exists() else latest
    final = best.get("val_loss") is not None
    loss = best.get("val_loss") if final else latest.get("best_val_loss")
    config = TrainConfig.from_dict(latest["train_config"])
    steps, seconds = int(latest["step"]), float(latest.get("elapsed") or 0.0)
    metrics = run_dir / METRICS_FILE
    rows = read_metrics(metrics) if metrics.is_file() else rows_from_history(latest)
    tokens = steps * config.batch * config.seq_len
    return RunSummary(
        name=run_dir.name or str(run_dir),
        best_val_loss=None if loss is None else float(loss),
        final=final,
        steps=steps,
        seconds=seconds,
        tokens_per_second=tokens / seconds if seconds > 0 else 0.0,
        recipe=describe_recipe(config),
        rows=rows,
        level=config.level,
        corpus=str(latest["corpus"].get("corpus", "")),
    )


def table(runs: list[RunSummary]) -> str:
    width = max(4, *(len(r.name) for r in runs))
    losses = [_loss(r) for r in runs]
    loss_width = max(len("best val"), *(len(text) for text in losses))
    head = (
        f"{'run':<{width}}  level  {'best val':>{loss_width}}  {'steps':>7}  {'time':>8}  "
        f"{'tokens/s':>9}  {'corpus':<{CORPUS_WIDTH}}  recipe"
    )
    lines = [head, "-" * len(head)]
    for r, loss in zip(runs, losses, strict=True):
        lines.append(
            f"{r.name:<{width}}  {r.level:<5}  {loss:>{loss_width}}  {r.steps:>7,}  "
            f"{r.seconds:>7.1f}s  {r.tokens_per_second:>9,.0f}  "
            f"{_shorten(r.corpus, CORPUS_WIDTH):<{CORPUS_WIDTH}}  {r.recipe}"
        )
    if any(not r.final for r in runs):
        lines.append("* best periodic validation on the fixed sample: the run has not finished")
    if len({r.level for r in runs}) > 1:
        lines.append(
            "char- and word-level losses are not comparable: nats per character against nats "
            "per word"
        )
    return "\n".join(lines)


def _loss(run: RunSummary) -> str:
    if run.best_val_loss is None:
        return "-"
    star = "" if run.final else "*"
    return f"{run.best_val_loss:.4f}{star} nats/{run.level}"


def _shorten(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def report(run_dirs: list[Path], compare_png: Path) -> tuple[str, list[RunSummary]]:
    """The table of the runs, and their validation curves drawn on `compare_png`."""
    runs = [summarize_run(d) for d in run_dirs]
    names = [r.name for r in runs]
    # Runs of the same name (runs/a/90s, runs/b/90s) go by their whole path.
    runs = [
        r if names.count(r.name) == 1 else replace(r, name=str(d))
        for r, d in zip(runs, run_dirs, strict=True)
    ]
    mixed = len({r.level for r in runs}) > 1
    draw_compare(
        [(f"{r.name} ({r.level})" if mixed else r.name, r.rows) for r in runs], compare_png
    )
    return table(runs), runs
