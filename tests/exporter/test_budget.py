"""Dropout chosen from the run's size when `--dropout` is not given."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from exporter.budget import choose_dropout, dropout_for_epochs, planned_epochs
from exporter.checkpoint import load_checkpoint
from exporter.train import train
from tests.exporter.conftest import tiny_config


@pytest.mark.parametrize(
    ("epochs", "dropout"), [(0.5, 0.0), (3.3, 0.0), (4.0, 0.0), (8.0, 0.1), (16.0, 0.2),
                            (36.0, 0.3), (500.0, 0.3)]
)  # fmt: skip
def test_dropout_grows_with_the_epochs_a_run_will_read(epochs: float, dropout: float) -> None:
    assert dropout_for_epochs(epochs) == dropout


def test_a_step_budget_plans_its_epochs_without_measuring() -> None:
    config = tiny_config(dropout=None, max_steps=1000)  # 1000 steps x 4 x 16 tokens
    assert planned_epochs(config, 8000, 0.0) == 8.0
    assert choose_dropout(config, 8000, 30, torch.device("cpu")) == 0.1
    assert choose_dropout(config.replace(dropout=0.25), 8000, 30, torch.device("cpu")) == 0.25


def test_a_time_budget_is_measured_on_this_machine() -> None:
    # A minute of a tiny model reads a 2,000-token corpus far more than 32 times, anywhere.
    config = tiny_config(dropout=None, max_steps=None, max_minutes=1.0)
    assert choose_dropout(config, 2000, 30, torch.device("cpu")) == 0.3


def test_the_chosen_dropout_is_recorded_and_kept_on_resume(tmp_path: Path, corpus: Path) -> None:
    config = tiny_config(dropout=None, max_steps=8)
    train(config, [corpus], tmp_path / "run", progress=False)
    saved = load_checkpoint(tmp_path / "run" / "last.pt")
    assert saved["train_config"]["dropout"] == 0.0
    train(config.replace(max_steps=12), [], tmp_path / "run", progress=False, resume=True)
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 12
