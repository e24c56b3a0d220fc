"""The command line: a normal run end to end, and every bad input as one sentence, no traceback."""

from __future__ import annotations

import functools
import os
import signal
from pathlib import Path

import pytest
import torch

import exporter.cli
from exporter.checkpoint import load_checkpoint
from exporter.cli import build_parser, main, train_config
from exporter.config import TrainConfig
from exporter.precision import resolve_precision
from exporter.train import TrainResult, train

# Tiny model options, as a user would type them.
TINY = [
    "--hidden", "24", "--embedding", "8", "--seq-len", "16", "--batch-size", "4",
    "--max-steps", "12", "--warmup-steps", "2", "--eval-interval", "6", "--eval-tokens", "256",
    "--threads", "1", "--no-progress",
]  # fmt: skip


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_sentence(err: str) -> None:
    """One `error:` line, nothing else (argparse's usage line aside), and no traceback."""
    assert "Traceback" not in err
    lines = [line for line in err.strip().splitlines() if not line.startswith(("usage:", " "))]
    assert len(lines) == 1 and "error: " in lines[0], err


def test_train_export_sample_end_to_end(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    status, printed, _ = run(capsys, "train", str(corpus), "--out", str(out), *TINY)
    assert status == 0 and "best validation loss" in printed
    ckpt = load_checkpoint(out / "best.pt")
    assert ckpt["command"].startswith("python -m exporter train ")
    assert ckpt["train_config"]["hidden"] == 24 and ckpt["train_config"]["max_steps"] == 12
    status, printed, _ = run(capsys, "export", str(out / "best.pt"))
    assert status == 0 and (out / "best.onnx").exists()
    status, printed, _ = run(capsys, "sample", str(out / "best.onnx"), "--length", "20")
    assert status == 0 and len(printed) == 21


def test_ctrl_c_saves_last_and_resume_finishes(
    tmp_path: Path,
    corpus: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def sigint_at(done: int) -> None:
        if done == 5:
            os.kill(os.getpid(), signal.SIGINT)

    uninterrupted = tmp_path / "whole"
    assert run(capsys, "train", str(corpus), "--out", str(uninterrupted), *TINY)[0] == 0

    out = tmp_path / "run"
    monkeypatch.setattr(exporter.cli, "train", functools.partial(train, on_step=sigint_at))
    status, _, err = run(capsys, "train", str(corpus), "--out", str(out), *TINY)
    assert status == 130
    assert_one_sentence(err)
    assert "stopped at step 5" in err and "--resume" in err
    assert load_checkpoint(out / "last.pt")["step"] == 5

    monkeypatch.undo()
    status, _, _ = run(capsys, "train", "--out", str(out), "--resume", "--no-progress")
    assert status == 0
    whole, resumed = load_checkpoint(uninterrupted / "last.pt"), load_checkpoint(out / "last.pt")
    assert resumed["step"] == 12
    assert all(torch.equal(whole["model"][k], resumed["model"][k]) for k in whole["model"])
    assert whole["history"] == resumed["history"]


def test_missing_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "train", str(tmp_path / "nope.txt"), "--out", str(tmp_path))
    assert status == 1 and "does not exist" in err
    assert_one_sentence(err)


def test_empty_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    status, _, err = run(capsys, "train", str(empty), "--out", str(tmp_path / "run"))
    assert status == 1 and "is empty" in err
    assert_one_sentence(err)


def test_corpus_too_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short.txt"
    short.write_text("To be, or not to be." * 5)  # 100 characters: 90 for training
    status, _, err = run(
        capsys, "train", str(short), "--out", str(tmp_path / "run"), "--seq-len", "64"
    )
    precision = resolve_precision("auto", torch.device("cpu")).name  # what the run picks here
    needed = TrainConfig().for_precision(precision).batch * 64 + 1  # its streams of 64, plus one
    assert status == 1 and f"needs {needed} tokens" in err and "has 90" in err
    assert_one_sentence(err)


@pytest.mark.parametrize(
    "option", [("--cell", "transformer"), ("--level", "byte"), ("--device", "tpu")]
)
def test_unknown_option_value(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str], option: tuple[str, str]
) -> None:
    status, _, err = run(capsys, "train", str(corpus), "--out", str(tmp_path), *option)
    assert status == 2 and "invalid choice" in err
    assert_one_sentence(err)


def test_invalid_option_number(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "train", str(corpus), "--out", str(tmp_path), "--hidden", "0")
    assert status == 1 and "--hidden must be at least 1" in err
    assert_one_sentence(err)


@pytest.mark.parametrize("command", ["export", "sample"])
def test_corrupt_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(os.urandom(4096))
    status, _, err = run(capsys, command, str(bad))
    assert status == 1 and "not a readable PyTorch checkpoint" in err
    assert_one_sentence(err)


def test_foreign_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    status, _, err = run(capsys, "export", str(foreign))
    assert status == 1 and "not a charbot checkpoint" in err
    assert_one_sentence(err)


def test_corrupt_onnx(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(os.urandom(4096))
    status, _, err = run(capsys, "sample", str(bad))
    assert status == 1 and "not a readable ONNX model" in err
    assert_one_sentence(err)


@pytest.mark.parametrize("where", ["proc", "under-a-file", "a-directory"])
def test_unwritable_export_output(
    trained: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    output = {
        "proc": Path("/proc/x.onnx"),
        "under-a-file": a_file / "x.onnx",
        "a-directory": tmp_path,
    }[where]
    status, _, err = run(capsys, "export", str(trained.best_path), "-o", str(output))
    assert status == 1 and "error:" in err
    assert_one_sentence(err)


def test_output_directory_is_a_file(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "train", str(corpus), "--out", str(corpus), *TINY)
    assert status == 1 and "is a file" in err
    assert_one_sentence(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "train", str(corpus), "--out", str(tmp_path), "--device", "cuda")
    assert status == 1 and "no CUDA GPU" in err
    assert_one_sentence(err)


def test_resume_with_incompatible_config(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "train", str(corpus), "--out", str(tmp_path), *TINY)[0] == 0
    status, _, err = run(capsys, "train", "--out", str(tmp_path), "--resume", "--cell", "gru")
    assert status == 1 and "cannot resume" in err and "--cell 'gru'" in err
    assert_one_sentence(err)


def test_resume_without_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "train", "--out", str(tmp_path), "--resume")
    assert status == 1 and "nothing to resume" in err
    assert_one_sentence(err)


def test_verify_fails_over_tolerance(
    trained: TrainResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "m.onnx"
    assert run(capsys, "export", str(trained.best_path), "-o", str(out))[0] == 0
    # An impossible tolerance: the float error between the backends is above zero.
    status, printed, err = run(
        capsys, "verify", str(out), str(trained.best_path), "--tolerance", "0"
    )
    assert "FAILED" in printed and status == 1 and "parity check failed" in err
    assert_one_sentence(err)


def test_options_build_the_config() -> None:
    def config(*argv: str) -> TrainConfig:
        return train_config(build_parser().parse_args(["train", "c.txt", "--out", "x", *argv]))

    assert config() == TrainConfig()
    timed = config("--max-minutes", "2")  # the time budget alone bounds the run
    assert timed.max_steps is None and timed.max_minutes == 2.0
    both = config("--max-minutes", "2", "--max-steps", "50", "--no-carry-state", "--level", "word")
    assert both.max_steps == 50 and not both.carry_state and both.level == "word"
