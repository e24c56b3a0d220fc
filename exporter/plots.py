"""Loss curves as PNG images, drawn headless with matplotlib's Agg canvas.

Figures are built with the object API (`Figure` + `FigureCanvasAgg`), never `pyplot`: no global
state, no GUI backend, safe to call from a training loop or a test.

Losses are drawn on a log axis: a run falls from ~4 nats to a tenth of that in its first
evaluations, and on a linear axis everything after that drop is one flat line along the bottom;
on a log axis a 10% improvement is the same height at 3.0 as at 0.3. The ticks are chosen for the
range drawn (`log_ticks`), so even a narrow range (1.3 to 2.4) has several labelled values. A
figure's title is also the PNG's `Title` text, so a file says what it shows.
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
    _save(curve_figure(rows, title), path, title)


def curve_figure(rows: Sequence[CurvePoint], title: str = "") -> Figure:
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
        ax.set_ylabel("loss (nats/token, log scale)")
        _log_axis(ax, [*train, *val])
        ax.grid(alpha=0.3)
        ax.grid(alpha=0.12, which="minor")
        ax.legend()
    if title:
        figure.suptitle(title)
    return figure


def draw_compare(runs: Sequence[tuple[str, Sequence[CurvePoint]]], path: Path) -> None:
    """The validation curves of several runs, against steps and against training seconds."""
    figure, axes = _figure(10, 4)
    for label, rows in runs:
        val = [r.val_loss for r in rows]
        axes[0].plot([r.step for r in rows], val, label=label, marker=".")
        axes[1].plot([r.elapsed_s for r in rows], val, label=label, marker=".")
    losses = [r.val_loss for _, rows in runs for r in rows]
    for ax, label in ((axes[0], "step"), (axes[1], "training seconds")):
        ax.set_xlabel(label)
        ax.set_ylabel("validation loss (nats/token, log scale)")
        _log_axis(ax, losses)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    _save(figure, path, "validation loss of " + ", ".join(label for label, _ in runs))


#: Mantissas of the log-axis ticks, coarsest first: the first set that gives at least
#: MIN_TICKS ticks in the range drawn is used.
TICK_MANTISSAS = (
    (1.0, 2.0, 5.0),
    (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
    (1.0, 1.2, 1.4, 1.6, 1.8, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0),
    tuple(1.0 + i / 20 for i in range(180)),  # every 0.05 from 1 to 9.95
)
MIN_TICKS = 4


def log_ticks(low: float, high: float) -> list[float]:
    """Round values between `low` and `high` (0 < low < high) to label a log axis with: the
    coarsest of TICK_MANTISSAS that gives MIN_TICKS of them, times powers of ten."""
    ticks: list[float] = []
    for mantissas in TICK_MANTISSAS:
        ticks = [
            round(m * 10.0**exponent, 10)
            for exponent in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
            for m in mantissas
            if low <= m * 10.0**exponent <= high
        ]
        if len(ticks) >= MIN_TICKS:
            break
    return ticks


def _log_axis(ax: Axes, values: Sequence[float]) -> None:
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    finite = [v for v in values if math.isfinite(v) and v > 0]
    if not finite:
        return  # nothing to draw yet (or a loss of 0): the default axis will do
    low, high = min(finite) / 1.08, max(finite) * 1.08
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    ax.yaxis.set_major_locator(FixedLocator(log_ticks(low, high)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _save(figure: Figure, path: Path, title: str) -> None:
    # Write beside, then rename: a reader (or a crash) never sees half an image.
    tmp = path.with_name(path.name + ".tmp.png")
    try:
        figure.savefig(tmp, format="png", metadata={"Title": title} if title else None)
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
