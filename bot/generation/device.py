"""Where a batch's recurrent state lives between steps, and how a step runs.

`HostStepper`: the state is a numpy array and each step is one `session.run`; ONNX Runtime copies
it in and out. On the CPU provider nothing is copied to another device, so this is the fastest.

`BoundStepper`: ONNX Runtime's IOBinding. The state is an `OrtValue` on the session's device (GPU
memory under the CUDA provider) and stays there from step to step: each step binds the sampled
tokens from the host, the state in place, the logits back to the host (sampling runs there), and
the new state on the device. Only the tokens and the logits cross. A change of the batch's rows
(a request joins or leaves) goes through the host once: rare next to the steps.

`engine.io_binding` chooses: "auto" binds on CUDA and not on the CPU; "on" and "off" force it
(the CPU runs the bound path in tests, to prove it writes the same text as the plain one).
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import onnxruntime as ort

from bot.generation.model import CUDA, LoadedModel
from bot.generation.params import IoBinding
from models import contract


class Stepper(Protocol):
    """Runs one model's steps with its state wherever this stepper keeps it."""

    def to_device(self, state: np.ndarray) -> Any:
        """A host state (layers * k, B, H) where the steps want it."""
        ...

    def to_host(self, state: Any) -> np.ndarray:
        """The state as a host array (layers * k, B, H)."""
        ...

    def step(self, tokens: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        """tokens (B, 1) int64 and the state -> logits (B, 1, V) on the host, the new state."""
        ...


class HostStepper:
    def __init__(self, model: LoadedModel) -> None:
        self.model = model

    def to_device(self, state: np.ndarray) -> np.ndarray:
        return state

    def to_host(self, state: np.ndarray) -> np.ndarray:
        return state

    def step(self, tokens: np.ndarray, state: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.model.run(tokens, state)


class BoundStepper:
    """One per batch, so per worker thread: an IOBinding is not shared between threads."""

    def __init__(self, model: LoadedModel, device: str) -> None:
        self.model = model
        self.device = device  # "cuda" or "cpu", as OrtValue names devices
        self.binding = model.session.io_binding()

    def to_device(self, state: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(state), self.device, 0)

    def to_host(self, state: ort.OrtValue) -> np.ndarray:
        host: np.ndarray = state.numpy()
        return host

    def step(self, tokens: np.ndarray, state: ort.OrtValue) -> tuple[np.ndarray, ort.OrtValue]:
        binding = self.binding
        binding.bind_cpu_input(contract.INPUT_TOKENS, tokens)
        binding.bind_ortvalue_input(contract.INPUT_STATE, state)
        binding.bind_output(contract.OUTPUT_LOGITS, "cpu")
        binding.bind_output(contract.OUTPUT_STATE, self.device)
        self.model.session.run_with_iobinding(binding)
        logits, state_out = binding.get_outputs()
        host_logits: np.ndarray = logits.numpy()
        return host_logits, state_out


def device_of(model: LoadedModel) -> str:
    """The device the session computes on, in OrtValue's terms."""
    return "cuda" if model.info.provider == CUDA else "cpu"


def stepper_for(model: LoadedModel, io_binding: IoBinding) -> Stepper:
    device = device_of(model)
    if io_binding == "on" or (io_binding == "auto" and device != "cpu"):
        return BoundStepper(model, device)
    return HostStepper(model)
