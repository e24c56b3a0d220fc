"""The ONNX model contract, version 1 (DESIGN.md, "The model contract").

One `.onnx` file is the whole model: weights, vocabulary and provenance. This module holds the
names both sides agree on, and the state layout, so that the exporter writes exactly what the bot
reads. It must not import torch or onnxruntime.

Tensors:
    tokens     input   int64    (batch, time)
    state      input   float32  (layers * k, batch, hidden); k = 2 for LSTM (all h, then all c)
    logits     output  float32  (batch, time, vocab)
    state_out  output  float32  same as state
"""

from __future__ import annotations

from typing import Final, Literal

FORMAT_VERSION: Final = 1

INPUT_TOKENS: Final = "tokens"
INPUT_STATE: Final = "state"
OUTPUT_LOGITS: Final = "logits"
OUTPUT_STATE: Final = "state_out"
INPUT_NAMES: Final = (INPUT_TOKENS, INPUT_STATE)
OUTPUT_NAMES: Final = (OUTPUT_LOGITS, OUTPUT_STATE)

META_FORMAT: Final = "charbot.format"
META_TOKENIZER: Final = "charbot.tokenizer"
META_MODEL: Final = "charbot.model"
META_TRAINING: Final = "charbot.training"
REQUIRED_METADATA: Final = (META_FORMAT, META_TOKENIZER, META_MODEL, META_TRAINING)

Cell = Literal["lstm", "gru", "rnn"]
CELLS: Final[tuple[Cell, ...]] = ("lstm", "gru", "rnn")


def state_factor(cell: str) -> int:
    """How many state tensors a layer carries: h and c for an LSTM, h alone otherwise."""
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; expected one of {', '.join(CELLS)}")
    return 2 if cell == "lstm" else 1


def state_shape(cell: str, layers: int, batch: int, hidden: int) -> tuple[int, int, int]:
    """Shape of the `state` input for a batch: (layers * k, batch, hidden)."""
    return (layers * state_factor(cell), batch, hidden)
