"""bf16 training: where `--precision auto` picks it, and that it trains as fp32 does.

Whether this machine's CPU computes bf16 natively does not matter here: the tests hand the trainer
their own answer through the detector (`exporter.precision.cpu_native_bf16`), and bf16 autocast
runs on any CPU (emulated where it is not native: slower, the same arithmetic). On a CPU without
native bf16 (an AVX2 AMD EPYC, say) oneDNN has no bf16 LSTM, so every bf16 run below goes through
the trainer's fallback to torch's own kernels there (`Precision.onednn`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import exporter.precision
from exporter.checkpoint import load_checkpoint, training_metadata
from exporter.cli import main as exporter_main
from exporter.config import RECIPE_BY_PRECISION, TrainConfig
from exporter.errors import TrainingInterrupted
from exporter.precision import Precision, cpuinfo_native_bf16, resolve_precision
from exporter.train import train
from tests.exporter.conftest import tiny_config
from tests.exporter.test_train import assert_same_run, stop_at

CPU = torch.device("cpu")

# Flags lines of /proc/cpuinfo, shortened.
SKYLAKE = "flags\t\t: fpu sse sse2 avx avx2 avx512f avx512bw avx512vl avx512_vnni\n"
ZEN4 = "flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n"
SAPPHIRE_RAPIDS = "flags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"


@pytest.mark.parametrize(
    ("cpuinfo", "feature"),
    [
        ("processor\t: 0\n" + SKYLAKE, None),
        ("processor\t: 0\n" + ZEN4 + "processor\t: 1\n" + ZEN4, "avx512_bf16"),
        (SAPPHIRE_RAPIDS, "amx_bf16"),
        ("Features\t: fp asimd bf16\n", None),  # aarch64: not detected, stays fp32
        ("", None),
    ],
    ids=["skylake", "zen4", "sapphire-rapids", "arm", "empty"],
)
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo: str, feature: str | None) -> None:
    assert cpuinfo_native_bf16(cpuinfo) == feature


def test_auto_follows_the_detector_on_a_cpu() -> None:
    native = resolve_precision("auto", CPU, detect=lambda: "amx_bf16")
    assert native.name == "bf16" and native.autocast_dtype is torch.bfloat16
    assert "amx_bf16" in native.reason and native.describe().startswith("bf16 autocast")
    emulated = resolve_precision("auto", CPU, detect=lambda: None)
    assert emulated.name == "fp32" and emulated.autocast_dtype is None
    assert "no native bf16" in emulated.describe()
    # An explicit choice is obeyed whatever the CPU.
    assert resolve_precision("bf16", CPU, detect=lambda: None).name == "bf16"
    assert resolve_precision("fp32", CPU, detect=lambda: "amx_bf16").name == "fp32"


def test_bf16_asked_for_on_a_cpu_without_it_is_obeyed_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="exporter"):
        emulated = resolve_precision("bf16", CPU, detect=lambda: None)
    assert emulated.name == "bf16" and "emulated" in emulated.reason
    assert "many times slower than fp32" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="exporter"):
        assert resolve_precision("bf16", CPU, detect=lambda: "avx512_bf16").reason == "asked for"
    assert not caplog.records


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_bf16_steps_use_onednn_where_it_runs_the_cell(
    monkeypatch: pytest.MonkeyPatch, cell: str
) -> None:
    answer = exporter.precision.onednn_runs_bf16(cell)
    assert isinstance(answer, bool)
    assert resolve_precision("bf16", CPU, cell, detect=lambda: "amx_bf16").onednn is answer
    monkeypatch.setattr(exporter.precision, "onednn_runs_bf16", lambda cell: False)
    assert resolve_precision("auto", CPU, cell, detect=lambda: "amx_bf16").onednn is False
    assert resolve_precision("auto", CPU, cell, detect=lambda: None).onednn is True  # fp32


def test_without_onednn_the_forward_pass_runs_torchs_own_kernels() -> None:
    fallback = Precision("bf16", "asked for", onednn=False)
    assert torch.backends.mkldnn.enabled
    with fallback.forward(CPU):
        assert not torch.backends.mkldnn.enabled and torch.is_autocast_enabled("cpu")
    assert torch.backends.mkldnn.enabled and not torch.is_autocast_enabled("cpu")
    with pytest.raises(ZeroDivisionError), fallback.forward(CPU):
        1 / 0  # noqa: B018
    assert torch.backends.mkldnn.enabled  # turned back on whatever happened
    with Precision("bf16", "asked for").forward(CPU):
        assert torch.backends.mkldnn.enabled


def test_this_machines_answer_is_one_torch_or_the_flags_give() -> None:
    # Whatever it is, the detector answers without failing, with a feature auto knows.
    assert exporter.precision.cpu_native_bf16() in (None, *exporter.precision.NATIVE_BF16_FEATURES)


@pytest.mark.parametrize(("feature", "chosen"), [("avx512_bf16", "bf16"), (None, "fp32")])
def test_the_cli_logs_and_records_what_auto_chose(
    tmp_path: Path,
    corpus: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    feature: str | None,
    chosen: str,
) -> None:
    monkeypatch.setattr(exporter.precision, "cpu_native_bf16", lambda: feature)
    out = tmp_path / "run"
    argv = ["-v", "train", str(corpus), "--out", str(out), "--device", "cpu", "--no-progress"]
    tiny = ["--hidden", "24", "--embedding", "8", "--seq-len", "16", "--batch-size", "4"]
    budget = ["--max-steps", "8", "--eval-interval", "4", "--eval-tokens", "256", "--threads", "1"]
    assert exporter_main(argv + tiny + budget) == 0
    captured = capsys.readouterr()
    logged = f"precision: {'bf16 autocast' if chosen == 'bf16' else 'fp32'} (chosen by auto"
    assert logged in captured.err
    assert logged.split(": ", 1)[1] in captured.out  # the closing line says it too
    for name in ("last.pt", "best.pt"):
        checkpoint = load_checkpoint(out / name)
        assert checkpoint["precision"] == chosen
        assert checkpoint["train_config"]["precision"] == "auto"
        # Master weights stay fp32 under autocast.
        assert all(t.dtype == torch.float32 for t in checkpoint["model"].values())
    assert training_metadata(load_checkpoint(out / "best.pt"))["precision"] == chosen


def test_bf16_reaches_the_validation_loss_of_fp32(tmp_path: Path, corpus: Path) -> None:
    runs = {
        precision: train(
            tiny_config(max_steps=32, precision=precision),
            [corpus],
            tmp_path / precision,
            progress=False,
        )
        for precision in ("fp32", "bf16")
    }
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert bf16.precision.name == "bf16" and fp32.precision.name == "fp32"
    assert bf16.train_loss != fp32.train_loss  # the steps really ran in another precision
    assert bf16.best_val_loss == pytest.approx(fp32.best_val_loss, abs=0.01)


def test_a_resume_in_the_other_precision_continues(
    tmp_path: Path, corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Not bit-exact (its steps round differently), but it goes on from the checkpoint.
    config = tiny_config(precision="bf16")
    whole = train(config, [corpus], tmp_path / "whole", progress=False)
    with pytest.raises(TrainingInterrupted):
        train(config, [corpus], tmp_path / "split", progress=False, on_step=stop_at(5))
    with caplog.at_level(logging.WARNING, logger="exporter"):
        resumed = train(
            config.replace(precision="fp32"), [], tmp_path / "split", progress=False, resume=True
        )
    assert "was trained in bf16 and goes on in fp32" in caplog.text
    assert resumed.steps == 16 and resumed.train_loss[:5] == whole.train_loss[:5]
    assert resumed.train_loss[5:] != whole.train_loss[5:]
    assert resumed.best_val_loss == pytest.approx(whole.best_val_loss, abs=0.01)
    assert load_checkpoint(resumed.last_path)["precision"] == "fp32"


def test_a_bf16_resume_is_exact(tmp_path: Path, corpus: Path) -> None:
    config = tiny_config(precision="bf16", dropout=0.1)
    whole = train(config, [corpus], tmp_path / "whole", progress=False)
    with pytest.raises(TrainingInterrupted):
        train(config, [corpus], tmp_path / "split", progress=False, on_step=stop_at(5))
    resumed = train(config, [corpus], tmp_path / "split", progress=False, resume=True)
    assert resumed.train_loss == whole.train_loss and resumed.val_history == whole.val_history
    assert_same_run(whole.last_path, resumed.last_path)


def test_the_batch_and_learning_rate_follow_the_precision_unless_given() -> None:
    unset = TrainConfig(max_steps=10)
    assert (unset.batch_size, unset.lr) == (None, None)
    for name, (batch, lr) in RECIPE_BY_PRECISION.items():
        filled = unset.for_precision(name)
        assert (filled.batch, filled.peak_lr) == (batch, lr)
    given = unset.replace(batch_size=8, lr=3e-3).for_precision("bf16")
    assert (given.batch, given.peak_lr) == (8, 3e-3)
    with pytest.raises(ValueError, match="for_precision"):
        _ = unset.batch


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_run_keeps_the_recipe_its_precision_chose(
    tmp_path: Path, corpus: Path, precision: str
) -> None:
    config = tiny_config(batch_size=None, lr=None, max_steps=4, precision=precision)
    train(config, [corpus], tmp_path / "run", progress=False)
    saved = load_checkpoint(tmp_path / "run" / "last.pt")["train_config"]
    assert (saved["batch_size"], saved["lr"]) == RECIPE_BY_PRECISION[precision]
    # A resume that gives neither goes on with what the run chose, not a conflict.
    resumed = train(config.replace(max_steps=6), [], tmp_path / "run", progress=False, resume=True)
    assert resumed.steps == 6
