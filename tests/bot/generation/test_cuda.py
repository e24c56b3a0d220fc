"""The CUDA execution provider for real. Skipped where there is none (CI, most machines):
`bench/gpu_check.sh` runs these on a GPU machine with onnxruntime-gpu installed."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import onnxruntime as ort
import pytest

from bot.errors import ProviderError
from bot.generation import Engine, EngineConfig, GenerationParams, LoadedModel, load_model
from bot.generation.device import BoundStepper, stepper_for
from bot.generation.model import CUDA


def _no_cuda(why: str) -> None:
    # bench/gpu_check.sh sets CHARBOT_REQUIRE_CUDA=1: there a skip would hide a broken GPU path.
    if os.environ.get("CHARBOT_REQUIRE_CUDA") == "1":
        pytest.fail(why)
    pytest.skip(why)


@pytest.fixture
def cuda_model(tiny_onnx: Path) -> LoadedModel:
    if CUDA not in ort.get_available_providers():
        _no_cuda("needs onnxruntime-gpu (the `cuda` extra) on a GPU machine")
    try:
        return load_model(tiny_onnx, "cuda")
    except ProviderError as exc:
        _no_cuda(f"no usable CUDA here: {exc}")
        raise


def test_the_state_lives_on_the_gpu(cuda_model: LoadedModel) -> None:
    assert cuda_model.info.provider == CUDA
    stepper = stepper_for(cuda_model, "auto")
    assert isinstance(stepper, BoundStepper) and stepper.device == "cuda"
    state = stepper.to_device(cuda_model.zero_state(2))
    assert state.device_name() == "cuda"
    tokens = cuda_model.zero_state(2)[:1, :, :1].reshape(2, 1).astype("int64")
    logits, state = stepper.step(tokens, state)
    assert logits.shape[:2] == (2, 1) and state.device_name() == "cuda"


async def test_cuda_writes_what_the_cpu_writes(cuda_model: LoadedModel, tiny_onnx: Path) -> None:
    async def texts(provider: str) -> list[str]:
        engine = await Engine.start(tiny_onnx, EngineConfig(provider=provider))  # type: ignore[arg-type]
        try:
            params = [GenerationParams(max_length=50, temperature=0.0)] * 4
            done = await asyncio.gather(*(engine.complete(p, q) for p, q in zip(
                ["To be", "Or to", "The s", ""], params, strict=True
            )))  # fmt: skip
            return [c.text for c in done]
        finally:
            await engine.close()

    assert await texts("cuda") == await texts("cpu")
