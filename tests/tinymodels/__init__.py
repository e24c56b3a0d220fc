"""The tiny contract models the tests run, committed as files so that no test needs torch.

`make.py` trains and exports them with the exporter (rerun it when the contract or the exporter's
graph changes); `widened` derives a wider, slower model from one without torch, for the tests
that need a generation to take a while.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from models import contract

HERE = Path(__file__).resolve().parent
# 2-layer, 32-unit models trained for a moment on tests/tinymodels/train.py's CORPUS.
TINY_LSTM = HERE / "tiny-lstm.onnx"
TINY_GRU = HERE / "tiny-gru.onnx"
TINY_WORD = HERE / "tiny-word.onnx"  # word-level LSTM
TINY_PLAY = HERE / "tiny-play.onnx"  # TINY_LSTM naming the `play` chat template
RECURRENT_OPS = ("LSTM", "GRU")


def widened(source: Path, path: Path, hidden: int, seed: int = 0) -> Path:
    """`source` (an exported model) with `hidden` units a layer and random weights, at `path`.

    The graph is the exporter's own; only the recurrent layers' weights, the head's weight, the
    state's shape and the metadata change size. The text is noise; the cost per step is real.
    """
    model = onnx.load(str(source))
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    rng = np.random.default_rng(seed)
    bound = hidden**-0.5

    def resize(name: str, shape: tuple[int, ...]) -> None:
        values = rng.uniform(-bound, bound, shape).astype(np.float32)
        weights[name].CopyFrom(numpy_helper.from_array(values, name))

    recurrent = [node for node in graph.node if node.op_type in RECURRENT_OPS]
    for layer, node in enumerate(recurrent):
        gates = 4 if node.op_type == "LSTM" else 3
        w, r, b = node.input[1:4]
        width = numpy_helper.to_array(weights[w]).shape[2] if layer == 0 else hidden
        resize(w, (1, gates * hidden, width))
        resize(r, (1, gates * hidden, hidden))
        resize(b, (1, 2 * gates * hidden))
        for attribute in node.attribute:
            if attribute.name == "hidden_size":
                attribute.i = hidden
    (head,) = [node for node in graph.node if node.op_type == "MatMul"]
    vocab = numpy_helper.to_array(weights[head.input[1]]).shape[1]
    resize(head.input[1], (hidden, vocab))
    for value in (*graph.input, *graph.output):
        if value.name in (contract.INPUT_STATE, contract.OUTPUT_STATE):
            value.type.tensor_type.shape.dim[2].dim_value = hidden
    del graph.value_info[:]
    for prop in model.metadata_props:
        if prop.key == contract.META_MODEL:
            shape = json.loads(prop.value)
            shape["hidden"] = hidden
            shape["parameters"] = sum(int(numpy_helper.to_array(t).size) for t in graph.initializer)
            prop.value = json.dumps(shape)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
