"""Training: checkpoints, exact resume, Ctrl-C, the schedule and the batch layout."""

from __future__ import annotations

import math
import os
import signal
from pathlib import Path

import pytest
import torch

from exporter.checkpoint import FORMAT_KEY, load_checkpoint
from exporter.config import TrainConfig
from exporter.data import RandomWindows, StreamWindows
from exporter.errors import ConfigError, CorpusError, TrainingInterrupted
from exporter.train import StepHook, TrainResult, learning_rate, train
from tests.exporter.conftest import tiny_config


def stop_at(step: int, how: str = "raise") -> StepHook:
    """An on_step hook that acts like Ctrl-C once `step` steps are done."""

    def hook(done: int) -> None:
        if done == step:
            if how == "raise":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGINT)  # the real thing, through the SIGINT handler

    return hook


def assert_same_run(a: Path, b: Path) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert ca["step"] == cb["step"]
    for name, tensor in ca["model"].items():
        assert torch.equal(tensor, cb["model"][name]), name
    assert ca["history"] == cb["history"]
    state_a, state_b = ca["optimizer"]["state"], cb["optimizer"]["state"]
    for key in state_a:
        assert torch.equal(state_a[key]["exp_avg"], state_b[key]["exp_avg"])


def test_train_writes_self_describing_checkpoints(trained: TrainResult) -> None:
    assert trained.steps == 24
    assert trained.best_path.exists() and trained.last_path.exists()
    assert len(trained.train_loss) == 24
    assert [step for step, _ in trained.val_history] == [8, 16, 24]
    assert math.isfinite(trained.best_val_loss) and trained.tokens_per_second > 0
    # Learning happened: the last steps' loss is well below the first's.
    assert sum(trained.train_loss[-4:]) / 4 < trained.train_loss[0] - 0.5

    # Plain torch.load with weights_only reads both: only tensors and plain data inside.
    last = torch.load(trained.last_path, weights_only=True)
    assert last[FORMAT_KEY] == 1 and last["kind"] == "last" and last["step"] == 24
    assert TrainConfig.from_dict(last["train_config"]) == tiny_config(max_steps=24)
    assert last["tokenizer"]["level"] == "char" and last["tokenizer"]["vocab"]
    assert last["model_config"]["hidden"] == 24
    assert last["corpus"]["corpus"] == "corpus.txt" and len(last["corpus"]["sha256"]) == 64
    assert last["corpus"]["characters"] > 1000
    assert isinstance(last["rng"]["torch"], torch.Tensor) and "optimizer" in last
    best = torch.load(trained.best_path, weights_only=True)
    assert best["kind"] == "best" and "optimizer" not in best
    assert best["val_loss"] == pytest.approx(trained.best_val_loss)


@pytest.mark.parametrize(
    "changes",
    [
        # dropout draws from torch's RNG: its state must be restored (bf16: test_precision.py)
        {"dropout": 0.1, "precision": "fp32"},
        {"carry_state": False, "dropout": 0.1},  # random windows: the data RNG too
    ],
    ids=["streams", "random-windows"],
)
def test_resume_is_exact(tmp_path: Path, corpus: Path, changes: dict[str, object]) -> None:
    config = tiny_config(**changes)
    whole = train(config, [corpus], tmp_path / "whole", progress=False)
    # Stop off the validation grid (step 5 of 16), so pending losses and the carried state count.
    with pytest.raises(TrainingInterrupted) as info:
        train(config, [corpus], tmp_path / "split", progress=False, on_step=stop_at(5))
    assert info.value.step == 5 and info.value.checkpoint == tmp_path / "split" / "last.pt"
    assert load_checkpoint(tmp_path / "split" / "last.pt")["step"] == 5
    resumed = train(config, [corpus], tmp_path / "split", progress=False, resume=True)
    assert resumed.train_loss == whole.train_loss
    assert resumed.val_history == whole.val_history
    assert resumed.best_val_loss == whole.best_val_loss
    assert_same_run(whole.last_path, resumed.last_path)


def test_sigint_stops_after_the_step_and_resumes(tmp_path: Path, corpus: Path) -> None:
    config = tiny_config()
    out = tmp_path / "run"
    with pytest.raises(TrainingInterrupted):
        train(config, [corpus], out, progress=False, on_step=stop_at(6, how="signal"))
    assert load_checkpoint(out / "last.pt")["step"] == 6
    # The handler is gone afterwards: Python's own is back.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    # Resuming without naming the corpus uses the checkpoint's.
    result = train(config, [], out, progress=False, resume=True)
    assert result.steps == 16


def test_resume_may_extend_the_budget_but_not_change_the_model(
    tmp_path: Path, corpus: Path
) -> None:
    config = tiny_config(max_steps=8)
    train(config, [corpus], tmp_path, progress=False)
    longer = train(config.replace(max_steps=12), [corpus], tmp_path, progress=False, resume=True)
    assert longer.steps == 12 and len(longer.train_loss) == 12
    with pytest.raises(ConfigError, match="--hidden 32"):
        train(config.replace(hidden=32), [corpus], tmp_path, progress=False, resume=True)
    other = tmp_path / "other.txt"
    other.write_text("something else entirely " * 40)
    with pytest.raises(CorpusError, match="same files"):
        train(config, [other], tmp_path, progress=False, resume=True)
    with pytest.raises(ConfigError, match="already holds"):
        train(config, [corpus], tmp_path, progress=False)


def test_time_budget_alone_bounds_the_run(tmp_path: Path, corpus: Path) -> None:
    config = tiny_config(max_steps=None, max_minutes=0.5 / 60)  # half a second
    result = train(config, [corpus], tmp_path, progress=False)
    assert result.steps > 0 and 0.5 <= result.seconds < 5


def test_learning_rate_warms_up_then_decays_to_a_tenth() -> None:
    config = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=110)
    assert learning_rate(config, 0, 0.0) == pytest.approx(1e-4)
    assert learning_rate(config, 9, 0.0) == pytest.approx(1e-3)
    assert learning_rate(config, 10, 0.0) == pytest.approx(1e-3)
    assert learning_rate(config, 60, 0.0) == pytest.approx(0.55e-3)
    assert learning_rate(config, 110, 0.0) == pytest.approx(1e-4)
    # Bounded by time only, the decay follows the elapsed fraction of the budget.
    timed = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=None, max_minutes=1.0)
    assert learning_rate(timed, 500, 30.0) == pytest.approx(0.55e-3)
    assert learning_rate(timed, 500, 60.0) == pytest.approx(1e-4)


def test_streams_continue_from_batch_to_batch() -> None:
    data = torch.arange(1000)
    streams = StreamWindows(data, batch_size=4, seq_len=10, seed=0)
    first, second = streams.next(0), streams.next(1)
    assert first.fresh and not second.fresh
    assert first.x.shape == (4, 10) and torch.equal(first.y[:, :-1], first.x[:, 1:])
    # Row b of the next batch starts where row b of this one stopped.
    assert torch.equal(second.x[:, 0], first.y[:, -1])
    # A new epoch starts again from a zero state.
    assert streams.next(streams.windows).fresh


def test_random_windows_are_repeatable_from_their_state() -> None:
    data = torch.arange(500)
    windows = RandomWindows(data, batch_size=3, seq_len=8, seed=1)
    windows.next(0)
    state = windows.state_dict()
    expected = windows.next(1).x
    windows.load_state_dict(state)
    assert torch.equal(windows.next(1).x, expected)
    assert torch.equal(expected[:, 1:], expected[:, :-1] + 1)  # contiguous windows
