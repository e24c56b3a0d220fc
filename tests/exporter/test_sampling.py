"""Sampling: the numpy sampler's semantics, and the same text from the .pt and the .onnx."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from exporter.cli import main
from exporter.errors import ConfigError
from exporter.sampling import Sampler, SamplingParams
from exporter.train import TrainResult


@pytest.fixture(scope="module")
def onnx_file(trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sample") / "tiny.onnx"
    assert main(["export", str(trained.best_path), "-o", str(path)]) == 0
    return path


def sample(capsys: pytest.CaptureFixture[str], path: Path, *options: str) -> tuple[str, str]:
    capsys.readouterr()
    assert main(["sample", str(path), *options]) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


@pytest.mark.parametrize(
    "options",
    [
        ("--temperature", "0"),
        ("--temperature", "0.8", "--seed", "7"),
        ("--temperature", "1.0", "--top-k", "5", "--top-p", "0.9", "--seed", "3"),
    ],
    ids=["greedy", "seeded", "top-k-top-p"],
)
def test_pt_and_onnx_give_the_same_text(
    trained: TrainResult,
    onnx_file: Path,
    capsys: pytest.CaptureFixture[str],
    options: tuple[str, ...],
) -> None:
    args = ("--prompt", "To be", "--length", "80", *options)
    from_pt, _ = sample(capsys, trained.best_path, *args)
    from_onnx, _ = sample(capsys, onnx_file, *args)
    assert from_pt == from_onnx
    assert from_pt.startswith("To be") and len(from_pt) == len("To be") + 80 + 1


def test_seed_repeats_and_differs(onnx_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first, _ = sample(capsys, onnx_file, "--length", "60", "--seed", "1", "--temperature", "1.5")
    again, _ = sample(capsys, onnx_file, "--length", "60", "--seed", "1", "--temperature", "1.5")
    other, _ = sample(capsys, onnx_file, "--length", "60", "--seed", "2", "--temperature", "1.5")
    assert first == again != other


def test_unencodable_prompt_is_reported(
    onnx_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, err = sample(capsys, onnx_file, "--prompt", "To ß€", "--length", "5", "--temperature", "0")
    assert "2 piece(s)" in err and "dropped" in err and "'€'" in err
    assert out.startswith("To ß€")


def test_sampler_semantics() -> None:
    logits = np.array([1.0, 3.0, 2.0, -1.0], dtype=np.float32)
    assert Sampler(SamplingParams(temperature=0.0)).pick(logits) == 1
    # top_k 1 and a tiny top_p both leave only the most likely token.
    assert {Sampler(SamplingParams(1.0, top_k=1, seed=s)).pick(logits) for s in range(20)} == {1}
    assert {Sampler(SamplingParams(1.0, top_p=0.01, seed=s)).pick(logits) for s in range(20)} == {1}
    # top_k 2 never picks outside the two most likely.
    picks = {Sampler(SamplingParams(2.0, top_k=2, seed=s)).pick(logits) for s in range(50)}
    assert picks == {1, 2}
    # Frequencies follow softmax(logits / T).
    sampler = Sampler(SamplingParams(temperature=2.0, seed=0))
    counts = np.bincount([sampler.pick(logits) for _ in range(4000)], minlength=4) / 4000
    expected = np.exp(logits / 2.0) / np.exp(logits / 2.0).sum()
    assert np.abs(counts - expected).max() < 0.03
    with pytest.raises(ConfigError):
        SamplingParams(temperature=-1.0)
    with pytest.raises(ConfigError):
        SamplingParams(top_p=0.0)
