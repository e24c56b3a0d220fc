"""The errors ONNX Runtime raises, defined once for the bot and the exporter.

This lives in `models`, not in `models.contract`: the contract stays importable with the standard
library alone (the test fakes and the writer need no runtime), while every side that *runs* a
contract file (the bot's engine, the exporter's parity check and sampler, the benchmarks) has
onnxruntime installed, since it is a dependency of the package itself. Importing this module
imports onnxruntime but never torch.
"""

from __future__ import annotations

from typing import Final

from onnxruntime.capi import onnxruntime_pybind11_state as _ort_state

#: What ONNX Runtime raises: its pybind exceptions derive from Exception directly, and its Python
#: wrapper raises RuntimeError/ValueError. Each package converts them to its own errors where they
#: enter (`except ORT_ERRORS as exc: raise ... from exc`).
ORT_ERRORS: Final[tuple[type[Exception], ...]] = (
    *(
        obj
        for obj in vars(_ort_state).values()
        if isinstance(obj, type) and issubclass(obj, Exception)
    ),
    RuntimeError,
    ValueError,
)
