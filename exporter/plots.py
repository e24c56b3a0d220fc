"""Loss curves as PNG images, drawn headless with matplotlib's Agg canvas.

Figures are built with the object API (`Figure` + `FigureCanvasAgg`), never `pyplot`: no global
state, no GUI backend, safe to call from a training loop or a test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from exporter.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


class CurvePoint(Protocol):
    """One evaluation of a run, as drawn (`exporter.metrics.MetricsRow` is one): this module
    needs only these fields, and so does not import the module that writes them."""

    @property
    def step(self) -> int: ...
    @property
    def elapsed_s(self) -> float: ...
    @property
    def train_loss(self) -> float: ...
    @property
    def val_loss(self) -> float: ...


def _figure(width: float, height: float) -> tuple[Figure, list[Axes]]:
    # Imported here: matplotlib takes a while to import, and only drawing needs it.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=80)
    FigureCanvasAgg(figure)
    # Fixed margins: a constrained layout costs twice the time of the drawing itself.
    figure.subplots_adjust(left=0.07, right=0.98, bottom=0.14, top=0.9, wspace=0.22)
    return figure, list(figure.subplots(1, 2))


def draw_curve(rows: Sequence[CurvePoint], path: Path, title: str = "") -> None:
    """Training and validation loss against steps (left) and training seconds (right)."""
    figure, axes = _figure(10, 3.6)
    steps = [r.step for r in rows]
    seconds = [r.elapsed_s for r in rows]
    train = [r.train_loss for r in rows]
    val = [r.val_loss for r in rows]
    for ax, xs, label in ((axes[0], steps, "step"), (axes[1], seconds, "training seconds")):
        kept = [(x, t) for x, t in zip(xs, train, strict=True) if not math.isnan(t)]
        ax.plot([x for x, _ in kept], [t for _, t in kept], label="train", color="tab:blue")
        ax.plot(xs, val, label="validation", color="tab:orange", marker=".")
        ax.set_xlabel(label)
        ax.set_ylabel("loss (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        figure.suptitle(title)
    _save(figure, path)


def draw_compare(runs: Sequence[tuple[str, Sequence[CurvePoint]]], path: Path) -> None:
    """The validation curves of several runs, against steps and against training seconds."""
    figure, axes = _figure(10, 4)
    for label, rows in runs:
        val = [r.val_loss for r in rows]
        axes[0].plot([r.step for r in rows], val, label=label, marker=".")
        axes[1].plot([r.elapsed_s for r in rows], val, label=label, marker=".")
    for ax, label in ((axes[0], "step"), (axes[1], "training seconds")):
        ax.set_xlabel(label)
        ax.set_ylabel("validation loss (nats/token)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _save(figure, path)


def _save(figure: Figure, path: Path) -> None:
    # Write beside, then rename: a reader (or a crash) never sees half an image.
    tmp = path.with_name(path.name + ".tmp.png")
    try:
        figure.savefig(tmp, format="png")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
