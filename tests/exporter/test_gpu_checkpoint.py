"""A checkpoint written on a GPU machine loads, resumes and exports on a CPU-only one.

No GPU is needed: the checkpoint is re-saved with every tensor's storage tagged `cuda:0`, exactly
as `torch.save` tags tensors that live on a GPU, so loading it needs the device mapping that a
CPU-only machine depends on.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch

from exporter.checkpoint import load_checkpoint
from exporter.cli import main as exporter_main
from exporter.train import TrainResult, train
from tests.exporter.conftest import tiny_config


@contextmanager
def storages_tagged_as_cuda() -> Iterator[None]:
    """While active, `torch.save` records every CPU storage as living on `cuda:0`."""

    def tag(storage: Any) -> str | None:
        return "cuda:0" if storage.device.type == "cpu" else None

    def untouched(storage: Any, location: str) -> None:
        return None  # loading is left to torch's own deserializers

    torch.serialization.register_package(1, tag, untouched)
    entry = torch.serialization._package_registry[0]
    try:
        yield
    finally:
        torch.serialization._package_registry.remove(entry)


def as_if_saved_on_a_gpu(src: Path, dst: Path) -> None:
    data = torch.load(src, map_location="cpu", weights_only=True)
    data["train_config"]["device"] = "cuda"
    if "rng" in data:  # last.pt: a GPU run saves its generators too (best.pt holds no RNG)
        data["rng"]["cuda"] = [torch.zeros(16, dtype=torch.uint8)]
    with storages_tagged_as_cuda():
        torch.save(data, dst)


@pytest.fixture
def gpu_run(tmp_path: Path, corpus: Path) -> tuple[Path, TrainResult]:
    out = tmp_path / "run"
    result = train(tiny_config(max_steps=8), [corpus], out, progress=False)
    as_if_saved_on_a_gpu(out / "last.pt", out / "last.pt")
    as_if_saved_on_a_gpu(out / "best.pt", out / "best.pt")
    return out, result


def test_the_checkpoint_really_names_the_gpu(gpu_run: tuple[Path, TrainResult]) -> None:
    out, _ = gpu_run
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the tagged tensors would load there as they are")
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(out / "last.pt", weights_only=True)  # without mapping: refused on a CPU


def test_it_loads_resumes_and_exports_on_the_cpu(
    gpu_run: tuple[Path, TrainResult], corpus: Path, tmp_path: Path
) -> None:
    out, first = gpu_run
    checkpoint = load_checkpoint(out / "last.pt")
    weights = checkpoint["model"]
    assert all(t.device.type == "cpu" for t in weights.values())
    resumed = train(
        tiny_config(max_steps=12, device="cpu"), [corpus], out, progress=False, resume=True
    )
    assert resumed.steps == 12 and resumed.train_loss[:8] == first.train_loss
    onnx_path = tmp_path / "gpu.onnx"
    assert exporter_main(["export", str(out / "best.pt"), "-o", str(onnx_path)]) == 0
    assert exporter_main(["verify", str(onnx_path), str(out / "best.pt")]) == 0


def test_bf16_autocast_trains_and_checks_its_choice(tmp_path: Path, corpus: Path) -> None:
    # Asked for, bf16 runs on any CPU (emulated where it is not native); the loss stays finite.
    result = train(tiny_config(precision="bf16"), [corpus], tmp_path / "bf16", progress=False)
    assert result.steps == 16 and all(loss == loss for loss in result.train_loss)
    assert result.best_val_loss is not None and result.best_val_loss < 4.0
