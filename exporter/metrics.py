"""A run, visible: `metrics.csv` appended at each evaluation, and `curve.png` drawn from it.

    step,elapsed_s,lr,train_loss,val_loss,tokens_per_s
    200,10.42,0.00998,2.0713,1.9820,39310

One row per evaluation: the step, the training seconds so far, the learning rate of the last step,
the mean training loss since the previous row, the validation loss on the fixed sample, and the
training throughput since the previous row. Each row is flushed at once, so `tail -f` and
`python -m exporter report` can follow a run in progress. A resumed run keeps the rows up to the
step it resumes from and appends after them.

`curve.png` is redrawn at evaluations (skipping some when drawing would take more than 2% of the
run's time: a draw costs up to a second on a busy machine) and always at the end of the run.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

from exporter.checkpoint import Checkpoint
from exporter.errors import CheckpointError, ConfigError
from exporter.plots import draw_curve

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.csv"
CURVE_FILE = "curve.png"
# The largest share of a run's time that redrawing curve.png at evaluations may take.
DRAW_SHARE = 0.02
COLUMNS = ("step", "elapsed_s", "lr", "train_loss", "val_loss", "tokens_per_s")


@dataclass(frozen=True)
class MetricsRow:
    step: int
    elapsed_s: float
    lr: float
    train_loss: float  # NaN when no step ran since the previous row
    val_loss: float
    tokens_per_s: float

    def cells(self) -> list[str]:
        return [
            str(self.step),
            f"{self.elapsed_s:.2f}",
            f"{self.lr:.6g}",
            f"{self.train_loss:.4f}",
            f"{self.val_loss:.4f}",
            f"{self.tokens_per_s:.0f}",
        ]


def read_metrics(path: Path) -> list[MetricsRow]:
    """The rows of a `metrics.csv`; a file of another shape is a CheckpointError."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or tuple(header) != COLUMNS:
                raise CheckpointError(f"{path} is not a charbot metrics file (its header differs)")
            return [
                MetricsRow(
                    int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]), float(r[5])
                )
                for r in reader
                if r
            ]
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except (ValueError, IndexError) as exc:
        raise CheckpointError(f"{path} has a malformed row: {exc}") from exc


class RunLog:
    """Writes a run directory's metrics.csv and curve.png as training goes."""

    def __init__(self, out_dir: Path, *, resume_step: int | None = None) -> None:
        self.out_dir = out_dir
        self.metrics_path = out_dir / METRICS_FILE
        self.curve_path = out_dir / CURVE_FILE
        self.rows: list[MetricsRow] = []
        self.next_draw = 0.0  # perf_counter time from which an evaluation redraws the curve
        if resume_step is not None and self.metrics_path.exists():
            self.rows = [r for r in read_metrics(self.metrics_path) if r.step <= resume_step]
        try:
            with self.metrics_path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(COLUMNS)
                writer.writerows(row.cells() for row in self.rows)
        except OSError as exc:
            raise ConfigError(f"cannot write {self.metrics_path}: {exc.strerror or exc}") from exc

    @property
    def last(self) -> MetricsRow | None:
        return self.rows[-1] if self.rows else None

    def record(
        self,
        step: int,
        elapsed: float,
        lr: float,
        train_losses: list[float],
        val_loss: float,
        tokens_per_step: int,
    ) -> MetricsRow:
        """Append one evaluation's row (flushed at once) and redraw the curve."""
        previous = self.last
        steps = step - (previous.step if previous else 0)
        seconds = elapsed - (previous.elapsed_s if previous else 0.0)
        row = MetricsRow(
            step,
            elapsed,
            lr,
            sum(train_losses) / len(train_losses) if train_losses else math.nan,
            val_loss,
            steps * tokens_per_step / seconds if seconds > 0 else 0.0,
        )
        self.rows.append(row)
        try:
            with self.metrics_path.open("a", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerow(row.cells())
        except OSError as exc:
            raise ConfigError(f"cannot write {self.metrics_path}: {exc.strerror or exc}") from exc
        if time.perf_counter() >= self.next_draw:
            self.draw()
        return row

    def title(self) -> str:
        """The run's directory, as given, and its best validation so far."""
        if not self.rows:
            return str(self.out_dir)
        best = min(self.rows, key=lambda r: r.val_loss)
        return (
            f"{self.out_dir}: best validation {best.val_loss:.4f} nats/token at step {best.step:,}"
        )

    def draw(self) -> None:
        """Redraw curve.png now; the next redraw at an evaluation waits until drawing has cost
        at most DRAW_SHARE of the time since (on a busy 2-core machine a draw takes ~1 s)."""
        started = time.perf_counter()
        draw_curve(self.rows, self.curve_path, title=self.title())
        cost = time.perf_counter() - started
        self.next_draw = started + cost / DRAW_SHARE


def rows_from_history(checkpoint: Checkpoint) -> list[MetricsRow]:
    """Rows rebuilt from a checkpoint's history, for a run without metrics.csv: one per
    validation, the mean training loss since the previous one, and the time axis spread at the
    run's mean pace (the history holds no times); learning rate and throughput unknown (0)."""
    history = checkpoint.get("history")
    if history is None:
        return []
    train_loss = [float(v) for v in history["train_loss"]]
    steps = int(checkpoint["step"])
    pace = float(checkpoint.get("elapsed") or 0.0) / steps if steps else 0.0
    rows, previous = [], 0
    for step, loss in ((int(s), float(v)) for s, v in history["val"]):
        window = train_loss[previous:step]
        mean = sum(window) / len(window) if window else math.nan
        rows.append(MetricsRow(step, step * pace, 0.0, mean, loss, 0.0))
        previous = step
    return rows
