"""The precision of the training steps: fp32, or bf16 autocast where the hardware computes bf16.

bf16 keeps fp32's exponent range, so it needs no loss scaling. Under autocast only the matrix
products (the LSTM's gates, the output projection) run in bf16; the master weights, AdamW's state
and the loss stay fp32, and the exported model is fp32 whatever the steps ran in.

`--precision auto` picks bf16 on a GPU that supports it and on a CPU that computes it natively:
AVX512-BF16 (Intel Cooper Lake and later, AMD Zen 4 and later) or AMX-BF16 (Intel Sapphire Rapids
and later), where oneDNN runs the LSTM in bf16 about 1.7x faster than in fp32 (docs/training.md).
A CPU without them would emulate bf16, slower than fp32, so auto keeps fp32 there. The detection
asks torch first (its CPU capability table, or its private helpers in versions without the
table), then the CPU's flags in /proc/cpuinfo. A wrong answer costs speed, never correctness.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from exporter.errors import DeviceError

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

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.name == "bf16" else None

    def describe(self) -> str:
        """`bf16 autocast (chosen by auto: ...)`: what a person reads in the log."""
        return f"{'bf16 autocast' if self.name == 'bf16' else 'fp32'} ({self.reason})"


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


def cpuinfo_native_bf16(cpuinfo: str) -> str | None:
    """The native-bf16 feature named on the first `flags` line of /proc/cpuinfo's text."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            flags = set(value.split())
            return next((f for f in NATIVE_BF16_FEATURES if f in flags), None)
    return None


def resolve_precision(
    name: str, device: torch.device, detect: Bf16Detector | None = None
) -> Precision:
    """The precision for `--precision NAME` on `device`; `detect` defaults to
    `cpu_native_bf16` (looked up when called, so a test may replace it)."""
    if name == "fp32":
        return Precision("fp32", "asked for")
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if name == "bf16":
        if device.type == "cuda" and not cuda_bf16:
            raise DeviceError("--precision bf16 was asked for, but this GPU does not support bf16")
        return Precision("bf16", "asked for")
    if device.type == "cuda":
        if cuda_bf16:
            return Precision("bf16", "chosen by auto: this GPU supports bf16")
        return Precision("fp32", "chosen by auto: this GPU does not support bf16")
    feature = (detect or cpu_native_bf16)()
    if feature is not None:
        return Precision("bf16", f"chosen by auto: this CPU computes bf16 natively ({feature})")
    return Precision("fp32", "chosen by auto: this CPU has no native bf16 (AVX512-BF16 or AMX)")
