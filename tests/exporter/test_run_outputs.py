"""What a run leaves to look at: metrics.csv, curve.png, `report` and compare.png, model cards,
and int8 exports judged by their validation loss."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from PIL import Image

from bot.generation.model import load_model
from exporter.checkpoint import load_checkpoint
from exporter.metrics import COLUMNS, MetricsRow, read_metrics
from exporter.onnx_export import read_metadata
from exporter.plots import curve_figure, draw_curve
from exporter.train import TrainResult, train
from tests.exporter.conftest import tiny_config
from tests.exporter.test_cli import assert_one_sentence, run

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)  # decodes the whole image: a truncated file fails here
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100


def test_metrics_has_one_row_per_evaluation(trained: TrainResult) -> None:
    run_dir = trained.best_path.parent
    lines = (run_dir / "metrics.csv").read_text(encoding="utf-8").splitlines()
    assert tuple(lines[0].split(",")) == COLUMNS
    rows = read_metrics(run_dir / "metrics.csv")
    assert [r.step for r in rows] == [step for step, _ in trained.val_history] == [8, 16, 24]
    assert [r.val_loss for r in rows] == pytest.approx([v for _, v in trained.val_history], 1e-3)
    assert all(r.tokens_per_s > 0 and r.lr > 0 for r in rows)
    assert [r.elapsed_s for r in rows] == sorted(r.elapsed_s for r in rows)
    assert_png(run_dir / "curve.png")


def falling_rows() -> list[MetricsRow]:
    """A run whose loss falls from 4.2 to 0.13 and then creeps: on a linear axis, everything
    after the first drop was one line along the bottom."""
    rows = [MetricsRow(0, 0.0, 0.0, math.nan, 4.17, 0.0)]
    for i in range(1, 61):
        val = 0.13 + 3.3 * math.exp(-i / 2.5) + 0.02 * math.sin(i)
        train = 0.12 + 3.6 * math.exp(-i / 2.2) + 0.03 * math.cos(i * 1.7)
        rows.append(MetricsRow(i * 200, i * 18.0, 1e-3, train, val, 40000.0))
    return rows


def test_a_curve_reads_after_the_first_drop_and_is_titled(tmp_path: Path) -> None:
    rows = falling_rows()
    figure = curve_figure(rows, "runs/discord")
    for ax in figure.axes:
        assert ax.get_yscale() == "log"
        low, high = ax.get_ylim()
        assert low <= 0.12 and high >= 4.17
        # Labelled ticks both in the tail (0.1 to 0.3) and above it: the tail has a scale.
        ticks = [t for t in ax.get_yticks() if low <= t <= high]
        labels = [label.get_text() for label in ax.get_yticklabels() if label.get_text()]
        assert len(ticks) >= 4 and len(labels) == len(ticks)
        assert any(0.1 <= t <= 0.3 for t in ticks) and any(t >= 1 for t in ticks)
    path = tmp_path / "curve.png"
    draw_curve(rows, path, title="runs/discord")
    assert_png(path)
    with Image.open(path) as image:
        assert image.info["Title"] == "runs/discord"


def test_a_runs_own_curve_names_the_run(trained: TrainResult) -> None:
    run_dir = trained.best_path.parent
    with Image.open(run_dir / "curve.png") as image:
        title = image.info["Title"]
    assert str(run_dir) in title and "best validation" in title


def test_report_prints_the_checkpoint_figures(
    tmp_path: Path, trained: TrainResult, capsys: pytest.CaptureFixture[str]
) -> None:
    png = tmp_path / "compare.png"
    run_dir = trained.best_path.parent
    status, printed, _ = run(capsys, "report", str(run_dir), str(run_dir), "--png", str(png))
    assert status == 0
    best, last = load_checkpoint(trained.best_path), load_checkpoint(trained.last_path)
    row = printed.splitlines()[2]
    assert f"{best['val_loss']:.4f}" in row and f"{last['step']:>7,}" in row
    assert f"{last['elapsed']:>7.1f}s" in row and "lstm 2x24 e8 T16 B4" in row
    assert_png(png)


def test_report_tells_levels_and_corpora_apart(
    tmp_path: Path, corpus: Path, word_corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A char run's nats per character and a word run's nats per word are not one column."""
    char = train(tiny_config(max_steps=8), [corpus], tmp_path / "char", progress=False)
    words = tiny_config(level="word", max_vocab=12, seq_len=8, max_steps=8)
    word = train(words, [word_corpus], tmp_path / "word", progress=False)
    runs = [str(char.best_path.parent), str(word.best_path.parent)]
    status, printed, _ = run(capsys, "report", *runs, "--png", str(tmp_path / "compare.png"))
    assert status == 0
    head, _, char_row, word_row, *notes = printed.splitlines()
    assert "level" in head and "corpus" in head and "best val" in head
    assert char_row.split()[:2] == ["char", "char"] and "nats/char" in char_row
    assert "corpus.txt" in char_row
    assert word_row.split()[:2] == ["word", "word"] and "nats/word" in word_row
    assert "words.txt" in word_row
    assert any("not comparable" in line for line in notes)


def test_report_on_a_directory_without_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "report", str(tmp_path))
    assert status == 1
    assert_one_sentence(err)
    assert "holds no training run" in err


@pytest.fixture(scope="module")
def int8_model(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from exporter.cli import main

    out = tmp_path_factory.mktemp("int8") / "tiny-int8.onnx"
    argv = ["export", str(trained.best_path), "-o", str(out), "--quantize", "int8"]
    assert main([*argv, "--length", "40"]) == 0
    return out


def test_export_writes_a_card_with_every_section(
    tmp_path: Path, trained: TrainResult, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tiny.onnx"
    argv = ["export", str(trained.best_path), "-o", str(out), "--prompt", "To be", "--seed", "7"]
    status, printed, _ = run(capsys, *argv)
    assert status == 0 and f"wrote {tmp_path / 'tiny.md'}" in printed
    card = (tmp_path / "tiny.md").read_text(encoding="utf-8")
    best = load_checkpoint(trained.best_path)
    for heading in ("## Corpus", "## Recipe", "## Training", "## Export check", "## Loss curve"):
        assert heading in card
    assert best["corpus"]["sha256"] in card and "corpus.txt" in card
    commands = read_metadata(out).training
    assert f"    {commands['command']}\n    {commands['export_command']}\n" in card
    assert "dropout 0.0" in card
    assert f"**{best['val_loss']:.4f}**" in card and f"{best['step']:,} steps" in card
    assert "max|Δlogits|" in card and "![loss curve](tiny.curve.png)" in card
    for temperature in ("0.2", "0.8", "1.2"):
        assert f"Temperature {temperature}, seed 7:\n\n```\nTo be" in card
    assert_png(tmp_path / "tiny.curve.png")


def test_int8_is_smaller_keeps_the_contract_and_generates(
    tmp_path: Path, trained: TrainResult, int8_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fp32 = tmp_path / "fp32.onnx"
    assert run(capsys, "export", str(trained.best_path), "-o", str(fp32), "--length", "10")[0] == 0
    assert int8_model.stat().st_size < fp32.stat().st_size
    loaded = load_model(int8_model)  # the bot's own contract check
    quantization = read_metadata(int8_model).quantization
    assert quantization is not None
    assert quantization.weights == "int8" and quantization.method == "static"
    assert 0 < quantization.loss_increase <= 0.02
    logits, _ = loaded.run(np.array([[1, 2, 3]], dtype=np.int64), loaded.zero_state(1))
    assert logits.shape == (1, 3, loaded.vocab_size)
    status, printed, _ = run(capsys, "sample", str(int8_model), "--length", "25", "--seed", "3")
    assert status == 0 and len(printed) == 26
    card = int8_model.with_suffix(".md").read_text(encoding="utf-8")
    assert "int8 weights" in card and "fp32" in card
    status, printed, _ = run(capsys, "verify", str(int8_model), str(trained.best_path))
    assert status == 0 and "increase" in printed and "max|Δlogits|" not in printed


def test_int8_past_the_allowed_loss_increase_is_refused(
    tmp_path: Path, trained: TrainResult, int8_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "refused.onnx"
    argv = ["export", str(trained.best_path), "-o", str(out), "--quantize", "int8"]
    status, _, err = run(capsys, *argv, "--max-loss-increase", "0")
    assert status == 1
    assert_one_sentence(err)
    assert "refusing to write" in err and "--max-loss-increase 0" in err
    figures = read_metadata(int8_model).quantization
    assert figures is not None
    assert f"{figures.fp32_val_loss:.4f}" in err and f"{figures.quantized_val_loss:.4f}" in err
    assert not out.exists() and not out.with_suffix(".md").exists()
    status, _, err = run(
        capsys, "verify", str(int8_model), str(trained.best_path), "--max-loss-increase", "0"
    )
    assert status == 1 and "fails its quality check" in err
