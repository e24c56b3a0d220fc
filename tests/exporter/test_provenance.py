"""A model's metadata and card give commands anyone can rerun from the repository root."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from exporter.onnx_export import read_metadata
from exporter.provenance import portable_path
from tests.exporter.test_cli import run
from tests.tinymodels.train import CORPUS

# A tiny recipe, as typed; --threads says how fast to run, not what to learn.
RECIPE = [
    "--hidden", "24", "--embedding", "8", "--seq-len", "16", "--batch-size", "4",
    "--warmup-steps", "2", "--eval-interval", "4", "--eval-tokens", "256", "--no-progress",
    "--threads", "1",
]  # fmt: skip


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository root holding the corpus, and the directory commands run from."""
    root = tmp_path / "repo"
    (root / "data").mkdir(parents=True)
    (root / "data" / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    monkeypatch.chdir(root)
    return root


def test_a_rerun_of_the_recorded_commands_makes_the_same_model(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    machine = tmp_path / "machine"  # paths of the machine that trained it: absolute, elsewhere
    corpus, run_dir = str(repo / "data" / "corpus.txt"), str(machine / "run")
    assert run(capsys, "train", corpus, "--out", run_dir, *RECIPE, "--max-steps", "12")[0] == 0
    model = repo / "models" / "tiny.onnx"
    export = ["export", f"{run_dir}/best.pt", "-o", str(model), "--length", "20"]
    assert run(capsys, *export)[0] == 0
    first = read_metadata(model).training
    command, export_command = first["command"], first["export_command"]
    assert str(tmp_path) not in command + export_command
    assert command.startswith("python -m exporter train data/corpus.txt --out runs/tiny ")
    assert "--max-steps 12" in command and "--dropout 0" in command
    assert f"--precision {first['precision']}" in command  # what auto chose on this machine
    assert "--threads" not in command and "--max-minutes" not in command
    assert export_command == (
        "python -m exporter export runs/tiny/best.pt -o models/tiny.onnx --length 20"
    )
    card = model.with_suffix(".md").read_text(encoding="utf-8")
    assert f"    {command}\n    {export_command}\n" in card

    for line in (command, export_command):  # as anyone would, from the repository root
        assert run(capsys, *shlex.split(line)[3:])[0] == 0
    again = read_metadata(model).training
    assert again["steps"] == first["steps"]
    assert again["best_val_loss"] == pytest.approx(first["best_val_loss"], abs=1e-6)
    assert (again["command"], again["export_command"]) == (command, export_command)


def test_a_time_budget_is_recorded_as_the_steps_of_the_weights(
    repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "timed"
    argv = ["train", "data/corpus.txt", "--out", str(run_dir), *RECIPE, "--max-minutes", "0.01"]
    assert run(capsys, *argv)[0] == 0
    model = repo / "timed.onnx"
    export = ["export", str(run_dir / "last.pt"), "-o", str(model), "--length", "5"]
    assert run(capsys, *export)[0] == 0
    training = read_metadata(model).training
    assert "--max-minutes" not in training["command"]
    assert f"--max-steps {training['steps']}" in training["command"]
    assert f"--dropout {training['config']['dropout']:g}" in training["command"]
    card = model.with_suffix(".md").read_text(encoding="utf-8")
    assert "bounded by 0.01 minutes" in card and f"the {training['steps']:,} steps" in card


def test_paths_are_made_relative_to_the_root_or_reduced_to_their_name(tmp_path: Path) -> None:
    assert portable_path(tmp_path / "a" / "b.txt", tmp_path) == "a/b.txt"
    assert portable_path("/elsewhere/data/corpus.txt", tmp_path) == "corpus.txt"
