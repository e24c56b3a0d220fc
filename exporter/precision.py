"""The precision of the training steps: fp32, or bf16 autocast where the hardware computes bf16.

bf16 keeps fp32's exponent range, so it needs no loss scaling. Under autocast only the matrix
products (the LSTM's gates, the output projection) run in bf16; the master weights, AdamW's state
and the loss stay fp32, and the exported model is fp32 whatever the steps ran in.

`--precision auto` picks bf16 on a GPU that supports it and on a CPU that computes it natively:
AVX512-BF16 (Intel Cooper Lake and later, AMD Zen 4 and later) or AMX-BF16 (Intel Sapphire Rapids
and later), where oneDNN runs the LSTM in bf16 about 1.7x faster than in fp32 (docs/training.md).
A CPU without them emulates bf16, far slower than fp32, so auto keeps fp32 there. The detection
asks torch first (its CPU capability table, or its private helpers in versions without the
table), then the CPU's flags in /proc/cpuinfo. A wrong answer costs speed, never correctness:
on a CPU without native bf16 oneDNN builds no bf16 LSTM at all (torch raises "could not create a
primitive descriptor"), so bf16 steps there, asked for or wrongly chosen, run torch's own kernels
instead (`Precision.onednn`, found by trying the run's cell once: `onednn_runs_bf16`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from exporter.errors import DeviceError
from models.charrnn import CharRNN, CharRNNConfig

log = logging.getLogger(__name__)

StepPrecision = Literal["fp32", "bf16"]

#: CPU features that compute bf16 natively, the faster first (the names torch and Linux use).
NATIVE_BF16_FEATURES = ("amx_bf16", "avx512_bf16")
CPUINFO = Path("/proc/cpuinfo")

#: Finds the CPU feature that computes bf16 natively, or None. Tests pass their own.
Bf16Detector = Callable[[], str | None]


@dataclass(frozen=True)
class Precision:
    """What the training steps run in, and why (for the log, the checkpoint and the card)."""

    name: StepPrecision
    reason: str
    # False for bf16 on a CPU whose oneDNN has no bf16 kernel for the run's cell: the steps then
    # run torch's own kernels (slow, the same arithmetic).
    onednn: bool = True

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.name == "bf16" else None

    @contextmanager
    def forward(self, device: torch.device) -> Iterator[None]:
        """What a training step's forward pass runs under: bf16 autocast or none, and oneDNN
        turned off where it cannot run the cell (the backward pass follows the forward's
        kernels)."""
        dtype = self.autocast_dtype
        with (
            torch.autocast(device.type, dtype=dtype, enabled=dtype is not None),
            nullcontext() if self.onednn else _without_onednn(),
        ):
            yield

    def describe(self) -> str:
        """`bf16 autocast (chosen by auto: ...)`: what a person reads in the log."""
        return f"{'bf16 autocast' if self.name == 'bf16' else 'fp32'} ({self.reason})"


FP32 = Precision("fp32", "asked for")


def cpu_native_bf16() -> str | None:
    """The feature with which this CPU computes bf16 natively (`amx_bf16`, `avx512_bf16`), or
    None. torch's own view first; the CPU's flags when this torch cannot tell."""
    if not torch.backends.mkldnn.is_available():  # type: ignore[no-untyped-call]
        return None  # oneDNN runs bf16 on the CPU; without it torch would fall back to slow code
    capabilities = _torch_capabilities()
    if capabilities is not None:
        return next((f for f in NATIVE_BF16_FEATURES if capabilities.get(f)), None)
    try:
        return cpuinfo_native_bf16(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None  # no /proc (not Linux): stay on fp32


def _torch_capabilities() -> Mapping[str, Any] | None:
    """torch's table of the CPU's features, or the private helpers' answers, or None."""
    cpu = getattr(torch, "cpu", None)
    table = getattr(cpu, "get_capabilities", None)
    if callable(table):
        try:
            return dict(table())
        except RuntimeError:
            pass
    avx512_bf16 = getattr(cpu, "_is_avx512_bf16_supported", None)
    if not callable(avx512_bf16):
        return None
    amx = getattr(cpu, "_is_amx_tile_supported", None)
    # Every CPU with AMX tiles so far has AMX-BF16 too.
    return {"amx_bf16": bool(amx()) if callable(amx) else False, "avx512_bf16": avx512_bf16()}


@functools.cache
def onednn_runs_bf16(cell: str) -> bool:
    """Whether oneDNN runs `cell` under bf16 autocast on this CPU, tried on a one-unit model: on a
    CPU without native bf16 it has no bf16 LSTM (torch raises) though its GRU and RNN run."""
    probe = CharRNN(CharRNNConfig(vocab_size=2, cell=cell, layers=1, hidden=1, embedding=1))
    tokens = torch.zeros(1, 1, dtype=torch.long)
    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            probe(tokens, probe.initial_state(1))
    except RuntimeError:
        return False
    return True


@contextmanager
def _without_onednn() -> Iterator[None]:
    enabled = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(enabled)


def cpuinfo_native_bf16(cpuinfo: str) -> str | None:
    """The native-bf16 feature named on the first `flags` line of /proc/cpuinfo's text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            return next((f for f in NATIVE_BF16_FEATURES if f in flags), None)
    return None


def resolve_precision(
    name: str, device: torch.device, cell: str = "lstm", detect: Bf16Detector | None = None
) -> Precision:
    """The precision for `--precision NAME` on `device`, for a model of `cell`s; `detect`
    defaults to `cpu_native_bf16` (looked up when called, so a test may replace it)."""
    if name == "fp32":
        return FP32
    if device.type == "cuda":
        cuda_bf16 = torch.cuda.is_bf16_supported()
        if name == "bf16" and not cuda_bf16:
            raise DeviceError("--precision bf16 was asked for, but this GPU does not support bf16")
        if name == "bf16":
            return Precision("bf16", "asked for")
        if cuda_bf16:
            return Precision("bf16", "chosen by auto: this GPU supports bf16")
        return Precision("fp32", "chosen by auto: this GPU does not support bf16")
    feature = (detect or cpu_native_bf16)()
    if name == "auto" and feature is None:
        return Precision("fp32", "chosen by auto: this CPU has no native bf16 (AVX512-BF16 or AMX)")
    if name == "auto":
        reason = f"chosen by auto: this CPU computes bf16 natively ({feature})"
    elif feature is None:
        log.warning(
            "--precision bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): the steps are "
            "emulated, many times slower than fp32 (docs/training.md); auto would pick fp32"
        )
        reason = "asked for, emulated: this CPU has no native bf16"
    else:
        reason = "asked for"
    return Precision("bf16", reason, onednn_runs_bf16(cell))
