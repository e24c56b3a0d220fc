"""What a new user's odd inputs did to the exporter: each now a sentence, with nothing lost."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from exporter.checkpoint import load_checkpoint, save_checkpoint, training_metadata
from exporter.errors import TrainingInterrupted
from exporter.train import TrainResult, train
from tests.bot.generation.fakemodels import build_bigram
from tests.exporter.conftest import WORD_CORPUS, tiny_config
from tests.exporter.test_cli import TINY, assert_one_sentence, run


@pytest.mark.parametrize(
    "option",
    [
        ("--weight-decay", "nan"),
        ("--lr", "inf"),
        ("--grad-clip", "nan"),
        ("--dropout", "nan"),
        ("--max-minutes", "inf"),
        ("--seed", "99999999999999999999999"),
        ("--seed", "-1"),
    ],
)
def test_non_finite_or_out_of_range_options_are_refused_before_anything_runs(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str], option: tuple[str, str]
) -> None:
    out = tmp_path / "run"
    status, _, err = run(capsys, "train", str(corpus), "--out", str(out), *TINY, *option)
    assert status == 2 and option[0] in err
    assert_one_sentence(err)
    assert not out.exists()


def test_a_loss_that_becomes_nan_stops_the_run_and_keeps_the_last_good_save(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    wild = ["--lr", "1e10", "--grad-clip", "0", "--warmup-steps", "0", "--eval-interval", "2"]
    status, _, err = run(capsys, "train", str(corpus), "--out", str(out), *TINY, *wild)
    assert status == 1 and "the training loss became nan at step" in err
    assert_one_sentence(err)
    last = load_checkpoint(out / "last.pt")  # saved at the last validation that went well
    assert f"keeps the last good weights (step {last['step']})" in err and last["step"] >= 2
    assert all(torch.isfinite(w).all() for w in last["model"].values())


@pytest.mark.parametrize("bad", ["seed", "non-contract"])
def test_sample_input_errors_are_one_sentence(
    tmp_path: Path, trained: TrainResult, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    if bad == "seed":
        argv = [str(trained.best_path), "--seed", "-1"]
    else:  # charbot metadata on a graph whose input is not called "tokens"
        argv = [str(build_bigram(tmp_path / "odd.onnx", tokens_name="input_ids"))]
    status, _, err = run(capsys, "sample", *argv)
    assert status == (2 if bad == "seed" else 1)
    assert_one_sentence(err)


def test_a_failed_export_leaves_the_old_model_in_place(
    tmp_path: Path, trained: TrainResult, capsys: pytest.CaptureFixture[str]
) -> None:
    checkpoint = load_checkpoint(trained.best_path)
    checkpoint["model"] = {k: torch.full_like(v, math.nan) for k, v in checkpoint["model"].items()}
    bad = tmp_path / "bad.pt"
    save_checkpoint(checkpoint, bad)
    prod = tmp_path / "prod.onnx"
    prod.write_bytes(b"the good model")
    status, _, err = run(capsys, "export", str(bad), "-o", str(prod))
    assert status == 1 and "parity check failed" in err
    for tolerance in ("-1", "nan"):
        status, _, err = run(
            capsys, "export", str(trained.best_path), "-o", str(prod), "--tolerance", tolerance
        )
        assert status == 2 and "--tolerance" in err
    assert prod.read_bytes() == b"the good model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pt", "prod.onnx"]


def test_sample_knows_a_model_by_its_content_not_its_suffix(
    tmp_path: Path, trained: TrainResult, capsys: pytest.CaptureFixture[str]
) -> None:
    model = tmp_path / "model.bin"
    assert run(capsys, "export", str(trained.best_path), "-o", str(model))[0] == 0
    onnx_text = run(capsys, "sample", str(model), "--length", "30", "--seed", "3")
    assert onnx_text[0] == 0 and len(onnx_text[1]) == 31
    checkpoint = tmp_path / "weights.onnx"  # a checkpoint under a misleading name
    checkpoint.write_bytes(trained.best_path.read_bytes())
    status, printed, _ = run(capsys, "sample", str(checkpoint), "--length", "30", "--seed", "3")
    assert status == 0 and len(printed) == 31


def test_word_model_samples_never_contain_unk(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "words.txt"
    corpus.write_text(WORD_CORPUS)
    # A vocabulary of 8: most words are <unk> in training, so the model predicts it often.
    config = tiny_config(level="word", max_vocab=8, max_steps=30)
    result = train(config, [corpus], tmp_path / "run", progress=False)
    onnx = tmp_path / "words.onnx"
    assert run(capsys, "export", str(result.best_path), "-o", str(onnx))[0] == 0
    for model in (result.best_path, onnx):
        status, printed, _ = run(
            capsys, "sample", str(model), "--length", "300", "--temperature", "1.5", "--seed", "1"
        )
        assert status == 0 and printed.strip() and "<unk>" not in printed


def test_exporting_last_pt_records_its_own_loss_not_best_pts(
    tmp_path: Path, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def stop_at(done: int) -> None:
        if done == 5:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(eval_interval=2), [corpus], out, progress=False, on_step=stop_at)
    last = load_checkpoint(out / "last.pt")  # step 5: never validated
    assert last["step"] == 5 and last["best_val_loss"] is not None  # step 4's, best.pt's
    assert training_metadata(last)["best_val_loss"] is None
    status, printed, _ = run(capsys, "export", str(out / "last.pt"), "-o", str(tmp_path / "m.onnx"))
    assert status == 0 and "no validation loss is recorded" in printed


def test_a_corpus_error_leaves_no_run_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    out = tmp_path / "runs" / "lyrics"
    status, _, err = run(capsys, "train", str(empty), "--out", str(out), *TINY)
    assert status == 1 and "is empty" in err
    assert not out.exists() and not out.parent.exists()


def test_a_corpus_too_short_for_the_smallest_batch_advises_only_what_helps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("ab\n")
    argv = ["train", str(tiny), "--out", str(tmp_path / "run"), "--seq-len", "1"]
    status, _, err = run(capsys, *argv, "--batch-size", "1", "--val-fraction", "0.4")
    assert status == 1 and "use a longer corpus" in err and "smaller" not in err
    assert_one_sentence(err)


def test_a_byte_order_mark_is_not_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = tmp_path / "bom.txt"
    corpus.write_text("\ufeff" + "To be, or not to be.\n" * 20, encoding="utf-8")
    out = tmp_path / "run"
    assert run(capsys, "train", str(corpus), "--out", str(out), *TINY)[0] == 0
    assert "\ufeff" not in load_checkpoint(out / "best.pt")["tokenizer"]["vocab"]
    # Resuming a run that has finished trains nothing, and says no rate.
    status, printed, _ = run(capsys, "train", "--out", str(out), "--resume", "--no-progress")
    assert status == 0 and "tokens/s" not in printed and "already finished" in printed
