"""The IOBinding path (state kept on the session's device) on the CPU provider: the same numbers
and the same text as the plain `session.run` path, so what runs on CUDA is the tested code."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import onnxruntime as ort

from bot.generation import Engine, EngineConfig, GenerationParams, load_model
from bot.generation.device import BoundStepper, HostStepper, device_of, stepper_for


def test_a_bound_step_matches_a_plain_step(tiny_onnx: Path) -> None:
    model = load_model(tiny_onnx, "cpu")
    assert device_of(model) == "cpu"
    assert isinstance(stepper_for(model, "auto"), HostStepper)  # the CPU's default
    bound = stepper_for(model, "on")
    assert isinstance(bound, BoundStepper)
    plain = HostStepper(model)
    rng = np.random.default_rng(0)
    host_state = rng.standard_normal(model.zero_state(3).shape).astype(np.float32)
    device_state = bound.to_device(host_state)
    assert isinstance(device_state, ort.OrtValue)
    for _ in range(5):  # carried across steps, as in a batch
        tokens = rng.integers(0, model.vocab_size, (3, 1)).astype(np.int64)
        want_logits, host_state = plain.step(tokens, host_state)
        got_logits, device_state = bound.step(tokens, device_state)
        np.testing.assert_allclose(got_logits, want_logits, rtol=0, atol=1e-6)
        np.testing.assert_allclose(bound.to_host(device_state), host_state, rtol=0, atol=1e-6)


async def _texts(path: Path, io_binding: str) -> list[str]:
    config = EngineConfig(provider="cpu", workers=1, max_batch=8, io_binding=io_binding)  # type: ignore[arg-type]
    engine = await Engine.start(path, config)
    try:
        # Rows join and leave a running batch (different lengths), with mixed temperatures.
        requests = [
            engine.complete(prompt, GenerationParams(max_length=length, temperature=t, seed=seed))
            for seed, (prompt, length, t) in enumerate(
                [("To be", 40, 0.0), ("Or to", 25, 0.8), ("", 60, 1.5), ("The s", 10, 0.5)] * 2
            )
        ]
        return [c.text for c in await asyncio.gather(*requests)]
    finally:
        await engine.close()


async def test_the_bound_path_writes_the_same_text_for_a_seed(tiny_onnx: Path) -> None:
    plain = await _texts(tiny_onnx, "off")
    bound = await _texts(tiny_onnx, "on")
    assert bound == plain
    assert len(set(plain)) > 2  # the requests really differ
