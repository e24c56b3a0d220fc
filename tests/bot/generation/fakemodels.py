"""Hand-built contract ONNX files for the engine's tests: tiny, exact, and easy to break.

`build_bigram` writes a model whose logits depend on the last token only (a (V, V) table looked up
with Gather) and whose state passes through unchanged: the next token's distribution is known
exactly. Its keyword arguments break one part of the contract at a time.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from models import contract
from models.contract import ContractMetadata, ModelShape
from models.tokenizers import tokenizer_from_json

DEFAULT_VOCAB = ("\n", "a", "b", "c")
_DELETE = object()


def build_bigram(
    path: Path,
    table: np.ndarray | None = None,
    vocab: Sequence[str] = DEFAULT_VOCAB,
    *,
    level: str = "char",
    unknown: str = "drop",
    unk_token: str | None = None,
    tokens_name: str = contract.INPUT_TOKENS,
    tokens_type: int = TensorProto.INT64,
    state_rank: int = 3,
    logits_dims: Sequence[str | int] | None = None,
    hidden: int = 4,
    metadata: Mapping[str, Any] | None = None,
) -> Path:
    """Write the model; `metadata` entries override (or, set to DELETE, remove) metadata keys."""
    vocab = list(vocab)
    v = len(vocab)
    if table is None:
        table = np.arange(v * v, dtype=np.float32).reshape(v, v) % 3
    full: list[str | int] = [1, "batch", hidden]
    state_shape = full[:state_rank]
    if state_rank > 3:
        state_shape += [1] * (state_rank - 3)
    inputs = [
        helper.make_tensor_value_info(tokens_name, tokens_type, ["batch", "time"]),
        helper.make_tensor_value_info(contract.INPUT_STATE, TensorProto.FLOAT, state_shape),
    ]
    outputs = [
        helper.make_tensor_value_info(
            contract.OUTPUT_LOGITS, TensorProto.FLOAT, list(logits_dims or ["batch", "time", v])
        ),
        helper.make_tensor_value_info(contract.OUTPUT_STATE, TensorProto.FLOAT, state_shape),
    ]
    nodes = [
        helper.make_node("Gather", ["table", tokens_name], [contract.OUTPUT_LOGITS], axis=0),
        helper.make_node("Identity", [contract.INPUT_STATE], [contract.OUTPUT_STATE]),
    ]
    graph = helper.make_graph(
        nodes,
        "bigram",
        inputs,
        outputs,
        [numpy_helper.from_array(table.astype(np.float32), "table")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    tokenizer = tokenizer_from_json(
        {"level": level, "vocab": vocab, "unknown": unknown, "unk_token": unk_token}
    )
    shape = ModelShape(
        cell="gru", layers=1, hidden=hidden, embedding=v, parameters=v * v, vocab_size=v
    )
    training = {"corpus": "hand-built"}
    meta: dict[str, Any] = ContractMetadata(tokenizer, shape, training).to_props()
    for key, value in (metadata or {}).items():
        if value is _DELETE:
            meta.pop(key, None)
        else:
            meta[key] = value
    helper.set_model_props(model, meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


DELETE: Any = _DELETE


class SlowSession:
    """An ONNX Runtime session whose every run sleeps first: keeps requests in flight in tests.

    `fail_on` makes the run calls with those (1-based) numbers raise instead.
    """

    def __init__(self, inner: Any, delay: float, fail_on: Sequence[int] = ()) -> None:
        self.inner = inner
        self.delay = delay
        self.fail_on = set(fail_on)
        self.calls = 0

    def run(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls in self.fail_on:
            raise RuntimeError("injected failure")
        time.sleep(self.delay)
        return self.inner.run(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
